# The Python test scripts of the VM tests (nixos/tests/*.nix), evaluated with placeholder pkgs,
# self and nodes, so that run.sh can parse and check them without nixpkgs, and the remote
# backends each node's services.app.nginx.routes name. Builtins only:
#   nix-instantiate --eval --strict --json tests/nix/test-scripts.nix
#   ->  { scripts = { "NAME.nix" = "script"; }; backends = { "NAME.nix" = [ "ADDR:PORT" ]; }; }
let
  inherit (builtins) attrNames attrValues concatLists filter readDir match listToAttrs isFunction;
  dir = ../../nixos/tests;
  entries = readDir dir;
  files = filter (n: entries.${n} == "regular" && match ".*[.]nix" n != null) (attrNames entries);

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  pkgs = {
    testers.runNixOSTest = test: test;
    writeShellScript = name: _: fakePath name;
    writeScript = name: _: fakePath name;
    python3 = fakePath "python3";
    curl = fakePath "curl";
    coreutils = fakePath "coreutils";
    nodejs = fakePath "nodejs";
    runCommand = name: _: _: fakePath name;
    importNpmLock.buildNodeModules = _: fakePath "node-modules";
  };
  self.nixosModules.default = ../../nixos/module.nix;
  node = n: {
    networking.primaryIPAddress = "192.168.1.${n}";
    system.build.toplevel = fakePath "nixos-system";
  };
  nodes = {
    machine = node "1";
    proxy = node "2";
    backend1 = node "3";
    backend2 = node "4";
    client = node "5";
  };
  test = file: import (dir + "/${file}") { inherit pkgs self; };
  script = file:
    let t = test file;
    in if isFunction t.testScript then t.testScript { inherit nodes; } else t.testScript;
  # A node is a module: a function of { nodes, config, pkgs, lib, ... } or an attribute set.
  nodeConfig = n: if isFunction n then n { inherit nodes pkgs; config = { }; lib = { }; } else n;
  backends = file:
    let
      t = test file;
      nodeList = if t ? nodes then map (n: nodeConfig t.nodes.${n}) (attrNames t.nodes) else [ ];
      routes = c: attrValues (((c.services or { }).app or { }).nginx.routes or { });
    in
    concatLists (map (c: concatLists (map (r: r.backends or [ ]) (routes c))) nodeList);
in
{
  scripts = listToAttrs (map (f: { name = f; value = script f; }) files);
  backends = listToAttrs (map (f: { name = f; value = backends f; }) files);
}
