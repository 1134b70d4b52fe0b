{
  # A stand-in for the nixpkgs input, so that `nix flake check --no-build` evaluates this
  # repository's flake.nix where nixpkgs cannot be fetched (tests/nix/run.sh):
  #   nix flake check --no-build --override-input nixpkgs path:tests/nix/standin-nixpkgs
  # It has the few lib functions flake.nix calls (written with builtins) and packages that are
  # derivations recording what they were asked for; nothing in it builds or runs. The VM tests and
  # the package are evaluated by `nix flake check` with the real nixpkgs.
  description = "stand-in nixpkgs for evaluating flake.nix offline";

  outputs = _:
    let
      lib = {
        genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
        hasSuffix = suffix: s:
          let n = builtins.stringLength s; k = builtins.stringLength suffix;
          in n >= k && builtins.substring (n - k) k s == suffix;
        removeSuffix = suffix: s:
          if lib.hasSuffix suffix s then builtins.substring 0 (builtins.stringLength s - builtins.stringLength suffix) s else s;
        mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
        filterAttrs = pred: set: builtins.listToAttrs (builtins.concatMap
          (n: if pred n set.${n} then [{ name = n; value = set.${n}; }] else [ ])
          (builtins.attrNames set));
      };
      # A derivation that records its name (never built: --no-build).
      recorded = system: name: builtins.derivation {
        inherit name system;
        builder = "/bin/sh";
        args = [ "-c" "echo stand-in > $out" ];
      };
      pkgsFor = system:
        let r = recorded system;
        in {
          stdenv.hostPlatform.system = system;
          callPackage = file: _: r "callPackage-${baseNameOf (toString file)}";
          writeText = name: _: r name;
          mkShell = _: r "shell";
          testers.runNixOSTest = test: r "vm-test-${test.name}";
          writeShellScript = name: _: r name;
          writeScript = name: _: r name;
          runCommand = name: _: _: r name;
          importNpmLock.buildNodeModules = _: r "node-modules";
        } // lib.genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "rust-analyzer" "nginx" "redis" "curl" "jq" "deadnix" "nixpkgs-fmt" "coreutils" "nodejs" "python3" ] r;
    in
    {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor;
    };
}
