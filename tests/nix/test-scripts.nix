# The Python test scripts of the VM tests (nixos/tests/*.nix), evaluated with placeholder pkgs,
# self and nodes, so that run.sh can parse them without nixpkgs. Builtins only:
#   nix-instantiate --eval --strict --json tests/nix/test-scripts.nix   ->  { "NAME.nix": "script" }
let
  inherit (builtins) attrNames filter readDir match listToAttrs isFunction;
  dir = ../../nixos/tests;
  entries = readDir dir;
  files = filter (n: entries.${n} == "regular" && match ".*[.]nix" n != null) (attrNames entries);

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    testers.runNixOSTest = test: test;
    writeShellScript = name: _: fakePath name;
    writeScript = name: _: fakePath name;
    python3.withPackages = _: fakePath "python3-with-packages";
    curl = fakePath "curl";
    coreutils = fakePath "coreutils";
  };
  self.nixosModules.default = ../../nixos/module.nix;
  node = n: {
    networking.primaryIPAddress = "192.0.2.${n}";
    system.build.toplevel = fakePath "nixos-system";
  };
  nodes = {
    machine = node "1";
    proxy = node "2";
    backend1 = node "3";
    backend2 = node "4";
    client = node "5";
  };
  script = file:
    let test = import (dir + "/${file}") { inherit pkgs self; };
    in if isFunction test.testScript then test.testScript { inherit nodes; } else test.testScript;
in
listToAttrs (map (f: { name = f; value = script f; }) files)
