# The seeds' layouts and the multi-host balancer as services.app configurations (plain
# attribute sets: the NixOS module's input). tests/nix/nginx-conf.nix renders what the module
# makes of them; the evaluation against the real nixpkgs modules (docs/nixos.md) uses the same.
{
  # (a): /api/randoms -> a cluster of 4 workers on 8081; the rest -> the fork instance on 8080.
  layout-a = {
    enable = true;
    instances."8080" = { };
    instances."8081" = { mode = "cluster"; workers = 4; };
    nginx.enable = true;
    nginx.routes."/".instances = [ 8080 ];
    nginx.routes."/api/randoms".instances = [ 8081 ];
  };

  # (b): /api/randoms -> round robin over 8082..8085; the rest -> 8080.
  layout-b = {
    enable = true;
    instances = builtins.listToAttrs (map (p: { name = p; value = { }; }) [ "8080" "8082" "8083" "8084" "8085" ]);
    nginx.enable = true;
    nginx.routes."/".instances = [ 8080 ];
    nginx.routes."/api/randoms".instances = [ 8082 8083 8084 8085 ];
  };

  # The virtual host on a port of its own (services.app.nginx.port), on nginx's default addresses.
  on-a-port = {
    enable = true;
    instances."8081" = { };
    nginx.enable = true;
    nginx.port = 8080;
    nginx.routes."/".instances = [ 8081 ];
  };

  # A balancer with no instance of its own in front of two backends.
  proxy = {
    enable = true;
    openFirewall = true;
    nginx.enable = true;
    nginx.balancing = "least_conn";
    nginx.routes."/" = {
      backends = [ "192.168.1.2:8082" "192.168.1.3:8082" ];
      extraConfig = "add_header X-Upstream $upstream_addr always;";
    };
  };
}
