# Several hosts: a load balancer whose upstream is an instance on each of two backends, and a
# client. Proves: both backends serve through the proxy, and with backend1's network cut
# (backend1.block()) every request still succeeds, from backend2.
{ pkgs, self }:
let
  backend = { nodes, ... }: {
    imports = [ self.nixosModules.default ];
    services.app = {
      enable = true;
      listenAddress = "0.0.0.0";
      openFirewall = true;
      trustedProxies = [ "${nodes.proxy.networking.primaryIPAddress}/32" ];
      instances."8082" = { };
    };
  };
in
pkgs.testers.runNixOSTest {
  name = "app-multi-host-failover";

  nodes = {
    proxy = { nodes, ... }: {
      imports = [ self.nixosModules.default ];
      services.app = {
        enable = true;
        openFirewall = true;
        nginx = {
          enable = true;
          # Addresses, not host names: the test network's /etc/hosts gives each node an IPv4 and
          # an IPv6 address, and nginx would make each a server (the backends listen on IPv4
          # only). An unreachable backend is given up after the package's proxy_connect_timeout.
          routes."/" = {
            backends = map (n: "${nodes.${n}.networking.primaryIPAddress}:8082") [ "backend1" "backend2" ];
            extraConfig = "add_header X-Upstream $upstream_addr always;";
          };
        };
      };
    };
    backend1 = backend;
    backend2 = backend;
    client = { ... }: { };
  };

  testScript = { nodes, ... }: ''
    b1 = "${nodes.backend1.networking.primaryIPAddress}:8082"
    b2 = "${nodes.backend2.networking.primaryIPAddress}:8082"

    start_all()
    proxy.wait_for_unit("nginx.service")
    backend1.wait_for_unit("app@8082.socket")
    backend2.wait_for_unit("app@8082.socket")
    client.wait_for_unit("multi-user.target")


    def served_by():
        """GET through the proxy; the upstream addresses nginx tried, last one answered."""
        headers = client.succeed(
            "curl -sf --max-time 30 -o /dev/null -D - 'http://proxy/api/randoms?cant=5'"
        )
        for line in headers.splitlines():
            if line.lower().startswith("x-upstream:"):
                return [a.strip() for a in line.split(":", 1)[1].split(",")]
        raise Exception(f"no X-Upstream header in {headers!r}")


    with subtest("both backends serve through the proxy"):
        seen = {served_by()[-1] for _ in range(6)}
        assert seen == {b1, b2}, seen

    with subtest("backend1 cut off: every request still succeeds, answered by backend2"):
        backend1.block()
        for _ in range(8):
            tried = served_by()
            assert tried[-1] == b2, tried

    with subtest("backend1 back: it serves again"):
        backend1.unblock()
        client.wait_until_succeeds(
            f"curl -sf -o /dev/null -D - 'http://proxy/api/randoms?cant=5' | grep -qi 'x-upstream: {b1}'",
            timeout=60,
        )
  '';
}
