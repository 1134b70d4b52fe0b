# The unit layout and nginx site NixOS generates for layout (b) of tests/nix/layouts.nix, with
# 8082 in cluster mode (WORKERS workers), 8083 eager and every socket on 0.0.0.0: nixos/lib.nix's
# functions called with the values nixos/module.nix resolves for that configuration, written the
# way nixpkgs' systemd-lib writes units from systemd.packages: the packaged template in
# /etc/systemd/system, a drop-in `UNIT.d/overrides.conf` per instance, `wantedBy` as
# `TARGET.wants/UNIT -> ../UNIT` symlinks (dangling for template instances), /etc/app/PORT.env;
# and the module's nginx site (tests/nix/nginx-conf.nix) for Debian's nginx, with the package's
# nginx files in /etc/nginx. tests/nix/nspawn-layout.sh boots it on a real systemd. Builtins only.
# (The drop-ins carry only what the module sets; NixOS adds PATH, LOCALE_ARCHIVE and TZDIR.)
{ workers }:
let
  app = import ../../nixos/lib.nix;
  inherit (builtins) attrNames concatLists concatStringsSep listToAttrs map mapAttrs;

  layout = (import ./layouts.nix).layout-b;
  listenAddress = "0.0.0.0";
  # Not a flag of the binary: read back from /proc/PID/environ to check the quoting.
  quoting = "a\"b\\c$HOME`d e'f";
  instance = port: {
    mode = if port == "8082" then "cluster" else "fork";
    workers = if port == "8082" then workers else null;
    threads = null;
    workerMaxMemory = null;
    logLevel = "info";
    # services.app.nginx.enable: the local nginx is trusted.
    trustedProxies = [ "127.0.0.1/32" "::1/128" ];
    # The module's default would start a local Redis for several instances; this checks the
    # units and the proxy, not chat.
    redisUrl = null;
    todosStore = "sqlite";
    settings.drain-timeout = 3;
    environment.APP_TEST_QUOTING = quoting;
  };
  ports = attrNames layout.instances;
  envText = port: app.envFileText port (app.instanceEnv (instance port));
  sockets = listToAttrs (map (p: { name = app.unitName p; value = app.socketUnit { port = p; inherit listenAddress; }; }) ports);
  services = listToAttrs (map
    (p: {
      name = app.unitName p;
      value = app.serviceUnit {
        lazy = p != "8083";
        envText = envText p;
      };
    })
    ports);

  section = name: lines: if lines == [ ] then "" else "[${name}]\n" + concatStringsSep "" (map (l: l + "\n") lines);
  socketDropin = s: section "Socket" (map (v: "ListenStream=${v}") (s.socketConfig.ListenStream or [ ]));
  serviceDropin = s:
    section "Unit" [ "X-Restart-Triggers=${s.unitConfig.X-Restart-Triggers}" ]
    + section "Service" [ "X-StopIfChanged=${if s.stopIfChanged then "true" else "false"}" ];
  wants = kind: units: concatLists (map (n: map (t: "${t}.wants/${n}.${kind}") units.${n}.wantedBy) (attrNames units));
in
{
  # path under /etc -> content
  files =
    listToAttrs (map (n: { name = "systemd/system/${n}.socket.d/overrides.conf"; value = socketDropin sockets.${n}; }) (attrNames sockets))
    // listToAttrs (map (n: { name = "systemd/system/${n}.service.d/overrides.conf"; value = serviceDropin services.${n}; }) (attrNames services))
    // listToAttrs (map (p: { name = "app/${p}.env"; value = envText p; }) ports)
    // { "nginx/sites-available/app-nixos" = import ./nginx-conf.nix { layout = "layout-b"; nginxDir = "/etc/nginx"; }; };
  # symlinks under /etc/systemd/system, each to ../BASENAME
  links = wants "socket" sockets ++ wants "service" services ++ [ "multi-user.target.wants/app.target" ];
  inherit quoting;
  trigger8082 = services."app@8082".unitConfig.X-Restart-Triggers;
  instances = mapAttrs (_: _: null) layout.instances;
}
