# Layout (b) of the seeds: /api/randoms spread by nginx over four instances (8082-8085), the rest
# to the instance on 8080. Proves: the instances are the packaged template plus NixOS drop-ins,
# they are socket-activated lazily, round robin reaches all four, /info comes from 8080.
{ pkgs, self }:
pkgs.testers.runNixOSTest {
  name = "app-layout-b-four-instances";

  nodes.machine = { ... }: {
    imports = [ self.nixosModules.default ];
    # The layout tests/nix checks the generated nginx site of (nginx -t, the nixpkgs module's rendering).
    services.app = (import ../../tests/nix/layouts.nix).layout-b;
    # Which upstream served each request.
    services.nginx.commonHttpConfig = "log_format upstream '$upstream_addr';";
    services.nginx.virtualHosts.app.extraConfig = "access_log /var/log/nginx/upstream.log upstream;";
  };

  testScript = ''
    import json

    ports = [8080, 8082, 8083, 8084, 8085]
    api_ports = [8082, 8083, 8084, 8085]

    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("nginx.service")

    with subtest("every socket listens and no instance runs yet (lazy activation)"):
        for port in ports:
            machine.succeed(f"systemctl is-active app@{port}.socket")
            machine.succeed(f"ss -Htln 'sport = :{port}' | grep -q '127.0.0.1:{port}'")
            machine.fail(f"systemctl is-active app@{port}.service")

    with subtest("an instance is the packaged template plus a NixOS drop-in"):
        fragment = machine.succeed("systemctl show -P FragmentPath app@8082.service").strip()
        assert fragment.endswith("/app@.service"), fragment
        dropins = machine.succeed("systemctl show -P DropInPaths app@8082.service")
        assert "app@8082.service.d/overrides.conf" in dropins, dropins
        machine.succeed("systemctl cat app@8082.service | grep -q '^ExecStart=/nix/store/.*/bin/app$'")
        machine.succeed("grep -q '^APP_MODE=\"fork\"$' /etc/app/8082.env")

    with subtest("nginx spreads /api/randoms over the four instances"):
        for _ in range(16):
            machine.succeed("curl -sf -o /dev/null 'http://127.0.0.1/api/randoms?cant=10'")
        served = machine.succeed("cat /var/log/nginx/upstream.log").split()
        assert sorted(set(served)) == [f"127.0.0.1:{p}" for p in api_ports], served
        for port in api_ports:
            machine.succeed(f"systemctl is-active app@{port}.service")
            info = json.loads(machine.succeed(f"curl -sf http://127.0.0.1:{port}/info"))
            assert info["port"] == port, info
            assert str(info["instance"]) == str(port), info
        machine.fail("systemctl is-active app@8080.service")

    with subtest("/info through nginx is served by the instance on 8080"):
        info = json.loads(machine.succeed("curl -sf http://127.0.0.1/info"))
        assert info["port"] == 8080, info
        assert info["mode"] == "fork", info
        machine.succeed("systemctl is-active app@8080.service")
        machine.succeed("curl -sf http://127.0.0.1/healthz")
  '';
}
