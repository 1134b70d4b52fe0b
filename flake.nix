{
  description = "app: a socket-activated HTTP server in fork or cluster mode under systemd, behind nginx";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAllSystems = f: nixpkgs.lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # Every nixos/tests/NAME.nix is a VM test, checks.NAME (it takes { pkgs, self }).
      vmTests = pkgs:
        let
          files = builtins.readDir ./nixos/tests;
          isTest = name: files.${name} == "regular" && nixpkgs.lib.hasSuffix ".nix" name;
        in
        nixpkgs.lib.mapAttrs'
          (name: _: {
            name = nixpkgs.lib.removeSuffix ".nix" name;
            value = import (./nixos/tests + "/${name}") { inherit pkgs self; };
          })
          (nixpkgs.lib.filterAttrs (name: _: isTest name) files);
    in
    {
      packages = forAllSystems (pkgs: {
        default = pkgs.callPackage ./nixos/package.nix { };
      });

      # An attribute set naming its file and key: errors point at nixos/module.nix, and a second
      # import of it (this or the path itself) is deduplicated by the module system. (Older
      # `nix flake check` accepts only functions and attribute sets here, not a bare path.)
      nixosModules.default = {
        _file = toString ./nixos/module.nix;
        key = toString ./nixos/module.nix;
        imports = [ ./nixos/module.nix ];
      };

      checks = forAllSystems (pkgs:
        {
          package = self.packages.${pkgs.stdenv.hostPlatform.system}.default;
          # The builtins-only logic tests, evaluated as part of the check.
          logic = pkgs.writeText "app-logic-tests.json" (builtins.toJSON (import ./tests/nix/lib-test.nix));
        }
        // vmTests pkgs);

      devShells = forAllSystems (pkgs: {
        default = pkgs.mkShell {
          inputsFrom = [ self.packages.${pkgs.stdenv.hostPlatform.system}.default ];
          packages = [
            pkgs.cargo
            pkgs.rustc
            pkgs.clippy
            pkgs.rustfmt
            pkgs.rust-analyzer
            pkgs.nginx
            pkgs.redis
            pkgs.curl
            pkgs.jq
            pkgs.deadnix
            pkgs.nixpkgs-fmt
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixpkgs-fmt);

      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = "${self.packages.${pkgs.stdenv.hostPlatform.system}.default}/bin/app";
          meta.description = "Run app in the foreground (PORT=8080 by default)";
        };
      });
    };
}
