# Layout (a) of the seeds: /api/randoms to one cluster-mode instance on 8081 (a primary and four
# workers), the rest to a fork-mode instance on 8080. Proves: the workers are children of the
# instance's main process and live in the instance's own cgroup, and they answer the requests.
{ pkgs, self }:
pkgs.testers.runNixOSTest {
  name = "app-layout-a-cluster";

  nodes.machine = { ... }: {
    imports = [ self.nixosModules.default ];
    virtualisation.cores = 2;
    # The layout tests/nix checks the generated nginx site of (nginx -t, the nixpkgs module's rendering).
    services.app = (import ../../tests/nix/layouts.nix).layout-a;
  };

  testScript = ''
    import json

    machine.wait_for_unit("nginx.service")
    machine.wait_for_unit("app@8081.socket")

    with subtest("/api/randoms through nginx starts the cluster instance on 8081"):
        machine.succeed("curl -sf -o /dev/null 'http://127.0.0.1/api/randoms?cant=100'")
        machine.wait_for_unit("app@8081.service")
        machine.succeed("grep -q '^APP_MODE=\"cluster\"$' /etc/app/8081.env")

    with subtest("its four workers are children of the primary, in the instance's cgroup"):
        cgroup = machine.succeed("systemctl show -P ControlGroup app@8081.service").strip()
        assert cgroup.endswith("/app@8081.service"), cgroup
        main_pid = machine.succeed("systemctl show -P MainPID app@8081.service").strip()
        machine.wait_until_succeeds(f"test $(pgrep -c -P {main_pid}) -eq 4", timeout=60)
        workers = set(machine.succeed(f"pgrep -P {main_pid}").split())
        procs = set(machine.succeed(f"cat /sys/fs/cgroup{cgroup}/cgroup.procs").split())
        assert main_pid in procs, (main_pid, procs)
        assert workers <= procs, f"workers {workers} are not all in {cgroup}: {procs}"
        print(machine.succeed("systemd-cgls --no-pager -u app@8081.service"))

        for _ in range(20):
            info = json.loads(machine.succeed("curl -sf http://127.0.0.1:8081/info"))
            assert info["mode"] == "cluster" and info["port"] == 8081, info
            assert int(info["workers"]) == 4, info
            assert str(info["pid"]) in workers, f"pid {info['pid']} is not one of the workers {workers}"

    with subtest("everything else goes to the fork-mode instance on 8080"):
        info = json.loads(machine.succeed("curl -sf http://127.0.0.1/info"))
        assert info["port"] == 8080, info
        assert info["mode"] == "fork", info
  '';
}
