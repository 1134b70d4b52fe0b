# The nginx site the NixOS module generates for a layout of tests/nix/layouts.nix: its upstreams
# and its virtual host, assembled from nixos/lib.nix as nixos/module.nix does and written the way
# the nixpkgs nginx module writes services.nginx.upstreams and virtualHosts (upstreamConfig,
# listenString, mkLocations in nixos/modules/services/web-servers/nginx/default.nix). Builtins
# only. tests/nix/run.sh compares it with the real module's output (tests/nix/fixtures) and runs
# `nginx -t` on it; tests/nix/nspawn-layout.sh boots it in Debian's nginx.
#
#   layout:   a name in tests/nix/layouts.nix
#   nginxDir: where the package's nginx/ is (NixOS: ${package}/share/app/nginx)
#   wrap:     true: a complete nginx.conf around the site, for `nginx -t` with prefix `prefix`
{ layout, nginxDir, wrap ? false, prefix ? "/tmp" }:
let
  app = import ../../nixos/lib.nix;
  inherit (builtins) attrNames concatStringsSep map sort;

  cfg = (import ./layouts.nix).${layout};
  # services.app.nginx.socketIo.enable defaults to true when a route serves /ws.
  routes = if cfg.nginx.socketIo.enable or true then app.withSocketIo cfg.nginx.routes else cfg.nginx.routes;
  listenAddress = cfg.listenAddress or app.packagedListenAddress;
  # The module's option defaults (services.app.nginx.*, routes.<path>.*, nixpkgs' vhost).
  route = path:
    let r = routes.${path};
    in {
      addresses = map (p: app.formatListen (app.connectAddress listenAddress) p) (r.instances or [ ]) ++ (r.backends or [ ]);
      balancing = r.balancing or cfg.nginx.balancing or "round-robin";
      priority = r.priority or 1000;
      extraConfig = r.extraConfig or "";
      retries = r.retries or "requests";
    };
  # nixpkgs' services.nginx at its defaults (networking.enableIPv6 on): where a virtual host
  # without `listen` listens. With services.app.nginx.port the module gives it a `listen`.
  nginx = { defaultListenAddresses = [ "0.0.0.0" "[::0]" ]; defaultHTTPListenPort = 80; };
  ownListen = app.vhostListen nginx { port = cfg.nginx.port or null; listenAddresses = cfg.nginx.listenAddresses or [ ]; };
  listen =
    if ownListen != [ ] then ownListen
    else map (addr: { inherit addr; port = nginx.defaultHTTPListenPort; }) nginx.defaultListenAddresses;

  param = k: v: if builtins.isBool v then (if v then k else "") else "${k}=${toString v}";
  upstreamBlock = path:
    let
      u = app.upstream { inherit (route path) addresses balancing; inherit nginxDir; };
    in
    ''
      upstream ${app.upstreamName path} {
        ${concatStringsSep "\n" (map (s: "server ${s} ${concatStringsSep " " (map (k: param k u.servers.${s}.${k}) (attrNames u.servers.${s}))};") (attrNames u.servers))}
        ${u.extraConfig}
      }
    '';
  locationBlock = path:
    let l = app.location { upstreamName = app.upstreamName path; inherit (route path) priority extraConfig retries; inherit nginxDir; };
    in
    ''
      location ${path} {
        proxy_pass ${l.proxyPass};
        ${l.extraConfig}
      }
    '';
  # nixpkgs sorts upstreams by name (mapAttrsToList) and locations by priority, then name.
  byUpstreamName = sort (a: b: app.upstreamName a < app.upstreamName b) (attrNames routes);
  byPriority = sort (a: b: (route a).priority < (route b).priority || ((route a).priority == (route b).priority && a < b)) (attrNames routes);

  site = ''
    ${concatStringsSep "\n" (map upstreamBlock byUpstreamName)}
    server {
      ${concatStringsSep "\n" (map (l: "listen ${l.addr}:${toString l.port} default_server;") listen)}
      server_name app ;
      ${concatStringsSep "\n" (map locationBlock byPriority)}
      access_log /var/log/nginx/access.log app_upstream;
    }
  '';
in
if !wrap then site else ''
  pid ${prefix}/nginx.pid;
  error_log ${prefix}/error.log;
  events { }
  http {
    client_body_temp_path ${prefix}/tmp;
    proxy_temp_path ${prefix}/tmp;
    fastcgi_temp_path ${prefix}/tmp;
    uwsgi_temp_path ${prefix}/tmp;
    scgi_temp_path ${prefix}/tmp;
    ${app.httpConfig nginxDir}
    ${builtins.replaceStrings [ "/var/log/nginx/" ":80 " ] [ "${prefix}/" ":18080 " ] site}
  }
''
