# The unit layout NixOS generates for a services.app configuration, computed from nixos/lib.nix
# and written the way nixpkgs' systemd-lib does for units from systemd.packages: the packaged
# template in /etc/systemd/system, a drop-in `UNIT.d/overrides.conf` per instance, `wantedBy` as
# `TARGET.wants/UNIT -> ../UNIT` symlinks (dangling for template instances), /etc/app/PORT.env.
# tests/nix/nspawn-layout.sh boots it on a real systemd. Builtins only.
# (The drop-ins carry only what the module sets; NixOS adds PATH, LOCALE_ARCHIVE and TZDIR.)
{ workers }:
let
  app = import ../../nixos/lib.nix;
  inherit (builtins) attrNames concatLists concatStringsSep head listToAttrs map mapAttrs;

  cfg = {
    enable = true;
    listenAddress = "0.0.0.0";
    instances."8082" = {
      mode = "cluster";
      inherit workers;
    };
    instances."8083".lazy = false;
    settings.drain-timeout = 3;
    # The container has no Redis (the module would start redis-app.service for two instances);
    # chat is not what this checks.
    redis.enable = false;
    # Not a flag of the binary: read back from /proc/PID/environ to check the quoting.
    environment.APP_TEST_QUOTING = "a\"b\\c$HOME`d e'f";
  };

  section = name: lines: if lines == [ ] then "" else "[${name}]\n" + concatStringsSep "" (map (l: l + "\n") lines);
  sockets = app.sockets cfg;
  services = app.services cfg;
  socketDropin = s:
    section "Unit" (if s ? description then [ "Description=${s.description}" ] else [ ])
    + section "Socket" (map (v: "ListenStream=${v}") (s.socketConfig.ListenStream or [ ]));
  serviceDropin = s:
    section "Unit" (map (t: "X-Restart-Triggers=${t}") s.restartTriggers)
    + section "Service" [ "X-StopIfChanged=${if s.stopIfChanged then "true" else "false"}" ];
  wants = kind: units: concatLists (map (n: map (t: "${t}.wants/${n}.${kind}") units.${n}.wantedBy) (attrNames units));
in
{
  # path under /etc -> content
  files =
    listToAttrs (map (n: { name = "systemd/system/${n}.socket.d/overrides.conf"; value = socketDropin sockets.${n}; }) (attrNames sockets))
    // listToAttrs (map (n: { name = "systemd/system/${n}.service.d/overrides.conf"; value = serviceDropin services.${n}; }) (attrNames services))
    // mapAttrs (_: f: f.text) (app.etcFiles cfg);
  # symlinks under /etc/systemd/system, each to ../BASENAME
  links = wants "socket" sockets ++ wants "service" services ++ map (t: "${t}.wants/app.target") app.target.wantedBy;
  quoting = cfg.environment.APP_TEST_QUOTING;
  trigger8082 = head services."app@8082".restartTriggers;
}
