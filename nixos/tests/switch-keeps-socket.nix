# A configuration switch under load. The specialisation changes instance 8082 (cluster mode,
# two workers); `switch-to-configuration test` runs while two bounded curl loops hit 8082
# directly and the app through nginx. Proves: zero failed requests, 8082's socket is never
# stopped (stopIfChanged = false), 8082 is restarted with its new settings, 8083 is untouched.
{ pkgs, self }:
let
  # load URL NAME: GET URL until /tmp/stop-load exists (at most 5 minutes); counts in /tmp/NAME.*
  load = pkgs.writeShellScript "app-load" ''
    url=$1 name=$2 ok=0 failed=0 deadline=$((SECONDS + 300))
    while [ ! -e /tmp/stop-load ] && [ "$SECONDS" -lt "$deadline" ]; do
      if ${pkgs.curl}/bin/curl -sf --max-time 30 -o /dev/null "$url"; then
        ok=$((ok + 1))
      else
        failed=$((failed + 1))
        echo "$(${pkgs.coreutils}/bin/date +%T.%N) request $((ok + failed)) failed" >> "/tmp/$name.failures"
      fi
      # Renamed into place, so a reader never sees the file empty halfway through a rewrite.
      echo "$ok" > "/tmp/$name.ok.new" && mv -f "/tmp/$name.ok.new" "/tmp/$name.ok"
    done
    echo "$ok $failed" > "/tmp/$name.result.new" && mv -f "/tmp/$name.result.new" "/tmp/$name.result"
  '';
in
pkgs.testers.runNixOSTest {
  name = "app-switch-keeps-socket";

  nodes.machine = { ... }: {
    imports = [ self.nixosModules.default ];
    virtualisation.cores = 2;
    services.app = {
      enable = true;
      instances."8082".lazy = false;
      instances."8083".lazy = false;
      settings.drain-timeout = 5;
      nginx = {
        enable = true;
        routes."/".instances = [ 8082 8083 ];
      };
    };
    specialisation.changed.configuration = {
      services.app.instances."8082" = {
        mode = "cluster";
        workers = 2;
      };
    };
  };

  testScript = { nodes, ... }: ''
    import json
    import re

    changed = "${nodes.machine.system.build.toplevel}/specialisation/changed"


    def show(prop, unit):
        return machine.succeed(f"systemctl show -P {prop} {unit}").strip()


    def wait_for_more(name, more):
        n = int(machine.succeed(f"cat /tmp/{name}.ok").strip() or 0)
        machine.wait_until_succeeds(f"test $(cat /tmp/{name}.ok) -ge {n + more}", timeout=120)


    machine.wait_for_unit("nginx.service")
    machine.wait_for_unit("app@8082.service")
    machine.wait_for_unit("app@8083.service")
    info = json.loads(machine.succeed("curl -sf http://127.0.0.1:8082/info"))
    assert info["mode"] == "fork", info

    socket_since = show("ActiveEnterTimestampMonotonic", "app@8082.socket")
    run_8082 = show("InvocationID", "app@8082.service")
    run_8083 = show("InvocationID", "app@8083.service")

    with subtest("load: direct to 8082's socket and through nginx"):
        machine.succeed("systemd-run --unit=load-direct ${load} 'http://127.0.0.1:8082/api/randoms?cant=5' direct")
        machine.succeed("systemd-run --unit=load-nginx ${load} 'http://127.0.0.1/api/randoms?cant=5' nginx")
        machine.wait_until_succeeds("test $(cat /tmp/direct.ok) -ge 50", timeout=120)
        machine.wait_until_succeeds("test $(cat /tmp/nginx.ok) -ge 50", timeout=120)

    with subtest("switch-to-configuration test while the load runs"):
        machine.succeed(f"{changed}/bin/switch-to-configuration test >&2")
        machine.wait_for_unit("app@8082.service")
        info = json.loads(machine.succeed("curl -sf http://127.0.0.1:8082/info"))
        assert info["mode"] == "cluster", info
        assert int(info["workers"]) == 2, info
        wait_for_more("direct", 50)
        wait_for_more("nginx", 50)
        machine.succeed("touch /tmp/stop-load")
        machine.wait_until_succeeds("test -e /tmp/direct.result -a -e /tmp/nginx.result", timeout=120)

    with subtest("zero failed requests"):
        for name in ["direct", "nginx"]:
            ok, failed = map(int, machine.succeed(f"cat /tmp/{name}.result").split())
            _, failures = machine.execute(f"cat /tmp/{name}.failures")
            assert failed == 0, f"{name}: {failed} of {ok + failed} requests failed:\n{failures}"
            assert ok >= 100, f"{name}: only {ok} requests"

    with subtest("the socket was never stopped; 8082 restarted, 8083 untouched"):
        assert show("ActiveEnterTimestampMonotonic", "app@8082.socket") == socket_since
        # Read, then searched here: machine.fail("journalctl ... | grep") would also pass if
        # journalctl failed.
        journal = machine.succeed("journalctl -b --no-pager -u app@8082.socket")
        assert "Listening on" in journal, journal
        assert not re.search("Closed|Stopping|Deactivated", journal), journal
        assert show("InvocationID", "app@8082.service") != run_8082
        assert show("InvocationID", "app@8083.service") == run_8083
  '';
}
