# Renders what nixos/lib.nix gives services.nginx (upstreams, the http-level map, the virtual
# host's locations) into a complete nginx.conf, the way the nixpkgs nginx module lays it out, so
# that `nginx -t` can check the generated directives (tests/nix/run.sh). Builtins only.
{ layout, prefix }:
let
  app = import ../../nixos/lib.nix;
  inherit (builtins) attrNames concatStringsSep map;

  configs = {
    layout-a = {
      enable = true;
      instances = {
        "8080" = { };
        "8081" = { mode = "cluster"; workers = 4; };
      };
      nginx = {
        enable = true;
        routes."/".instances = [ 8080 ];
        routes."/api/randoms".instances = [ 8081 ];
      };
    };
    layout-b = {
      enable = true;
      instances = builtins.listToAttrs (map (p: { name = p; value = { }; }) [ "8080" "8082" "8083" "8084" "8085" ]);
      nginx = {
        enable = true;
        balancing = "least_conn";
        routes."/".instances = [ 8080 ];
        routes."/api/randoms" = {
          instances = [ 8082 8083 8084 8085 ];
          balancing = "round-robin";
        };
        routes."= /info" = {
          instances = [ 8080 ];
          websockets = false;
          keepalive = 0;
        };
      };
    };
    proxy = {
      enable = true;
      nginx = {
        enable = true;
        balancing = "ip_hash";
        routes."/" = {
          backends = [ "10.0.0.2:8082" "10.0.0.3:8082" "[::1]:8082" ];
          extraConfig = "add_header X-Upstream $upstream_addr always;";
        };
      };
    };
  };
  cfg = configs.${layout};

  # nixpkgs: nixos/modules/services/web-servers/nginx/default.nix (recommendedProxyConfig)
  recommendedProxyConfig = ''
    proxy_set_header        Host $host;
    proxy_set_header        X-Real-IP $remote_addr;
    proxy_set_header        X-Forwarded-For $proxy_add_x_forwarded_for;
    proxy_set_header        X-Forwarded-Proto $scheme;
    proxy_set_header        X-Forwarded-Host $host;
    proxy_set_header        X-Forwarded-Server $host;
  '';
  param = k: v: if builtins.isBool v then (if v then k else "") else "${k}=${toString v}";
  upstreams = app.upstreams cfg;
  upstreamBlock = name:
    let u = upstreams.${name};
    in ''
      upstream ${name} {
        ${concatStringsSep "\n" (map (s: "server ${s} ${concatStringsSep " " (map (k: param k u.servers.${s}.${k}) (attrNames u.servers.${s}))};") (attrNames u.servers))}
        ${u.extraConfig}
      }
    '';
  locations = app.locations cfg;
  locationBlock = path:
    let l = locations.${path};
    in ''
      location ${path} {
        proxy_pass ${l.proxyPass};
        ${l.extraConfig}
        ${if l.recommendedProxySettings then recommendedProxyConfig else ""}
      }
    '';
in
''
  pid ${prefix}/nginx.pid;
  error_log ${prefix}/error.log;
  events { }
  http {
    access_log off;
    client_body_temp_path ${prefix}/tmp;
    proxy_temp_path ${prefix}/tmp;
    fastcgi_temp_path ${prefix}/tmp;
    uwsgi_temp_path ${prefix}/tmp;
    scgi_temp_path ${prefix}/tmp;
    ${concatStringsSep "\n" (map upstreamBlock (attrNames upstreams))}
    ${app.httpConfig cfg}
    server {
      listen 127.0.0.1:18080;
      ${concatStringsSep "\n" (map locationBlock (attrNames locations))}
    }
  }
''
