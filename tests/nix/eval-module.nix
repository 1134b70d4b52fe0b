# Evaluates nixos/module.nix, the VM tests' node configurations and flake.nix with the real
# nixpkgs library (lib.evalModules) but without nixpkgs itself: the NixOS options the module sets
# are replaced by small stubs of the same types (systemd units, environment.etc, firewall,
# assertions, services.nginx, services.redis), and pkgs by placeholders.
#
#   nix-instantiate --eval --strict --json tests/nix/eval-module.nix --arg nixpkgsLib /path/to/nixpkgs.lib/lib
#
# (the nix-community/nixpkgs.lib flake, or <nixpkgs/lib>). It throws on any mismatch; on success
# it returns what it evaluated. tests/nix/run.sh runs it when APP_NIXPKGS_LIB is set.
{ nixpkgsLib }:
let
  lib = import nixpkgsLib;
  inherit (lib) mkOption types;
  app = import ../../nixos/lib.nix;

  fakePath = name: "/nix/store/00000000000000000000000000000000-${name}";
  fakeApp = {
    type = "derivation";
    name = "app-0.1.0";
    outPath = fakePath "app-0.1.0";
  };
  fakePkgs = {
    inherit lib;
    callPackage = _: _: fakeApp;
    writeShellScript = name: _: fakePath name;
    writeScript = name: _: fakePath name;
    python3.withPackages = _: fakePath "python3-with-packages";
    curl = fakePath "curl";
    coreutils = fakePath "coreutils";
    testers.runNixOSTest = test: test;
  };
  fakeSelf = {
    nixosModules.default = ../../nixos/module.nix;
  };

  # ---- stubs of the NixOS options the module and the tests set ------------------------------
  # systemd's unit option type: lists concatenate, scalars must agree.
  unitOption = types.mkOptionType {
    name = "systemd option";
    merge = loc: defs:
      if builtins.isList (builtins.head defs).value
      then lib.concatMap (d: d.value) defs
      else lib.mergeEqualOption loc defs;
  };
  strs = mkOption { type = types.listOf types.str; default = [ ]; };
  unitCommon = {
    enable = mkOption { type = types.bool; default = true; };
    overrideStrategy = mkOption { type = types.enum [ "asDropinIfExists" "asDropin" ]; default = "asDropinIfExists"; };
    description = mkOption { type = types.singleLineStr; default = ""; };
    wantedBy = strs;
    requiredBy = strs;
    after = strs;
    before = strs;
    wants = strs;
    requires = strs;
    partOf = strs;
    restartTriggers = mkOption { type = types.listOf types.unspecified; default = [ ]; };
    unitConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
  };
  serviceType = types.submodule {
    options = unitCommon // {
      stopIfChanged = mkOption { type = types.bool; default = true; };
      restartIfChanged = mkOption { type = types.bool; default = true; };
      environment = mkOption { type = types.attrsOf (types.nullOr types.str); default = { }; };
      path = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      serviceConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    };
  };
  socketType = types.submodule {
    options = unitCommon // {
      listenStreams = strs;
      socketConfig = mkOption { type = types.attrsOf unitOption; default = { }; };
    };
  };
  targetType = types.submodule { options = unitCommon; };

  locationType = types.submodule {
    options = {
      proxyPass = mkOption { type = types.nullOr types.str; default = null; };
      proxyWebsockets = mkOption { type = types.bool; default = false; };
      recommendedProxySettings = mkOption { type = types.bool; default = false; };
      priority = mkOption { type = types.int; default = 1000; };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };
  };
  listenType = types.submodule {
    options = {
      addr = mkOption { type = types.str; };
      port = mkOption { type = types.nullOr types.port; default = null; };
      ssl = mkOption { type = types.bool; default = false; };
      extraParameters = strs;
    };
  };
  vhostType = types.submodule {
    options = {
      serverName = mkOption { type = types.nullOr types.str; default = null; };
      listen = mkOption { type = types.listOf listenType; default = [ ]; };
      default = mkOption { type = types.bool; default = false; };
      onlySSL = mkOption { type = types.bool; default = false; };
      addSSL = mkOption { type = types.bool; default = false; };
      forceSSL = mkOption { type = types.bool; default = false; };
      locations = mkOption { type = types.attrsOf locationType; default = { }; };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };
  };
  upstreamType = types.submodule {
    options = {
      servers = mkOption {
        type = types.attrsOf (types.submodule {
          freeformType = types.attrsOf (types.oneOf [ types.bool types.int types.str ]);
          options.backup = mkOption { type = types.bool; default = false; };
        });
        default = { };
      };
      extraConfig = mkOption { type = types.lines; default = ""; };
    };
  };

  stubs = {
    # Everything else a test node sets (virtualisation.*, ...) is accepted as is.
    freeformType = types.lazyAttrsOf types.anything;
    options = {
      assertions = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      warnings = mkOption { type = types.listOf types.str; default = [ ]; };
      systemd.packages = mkOption { type = types.listOf types.package; default = [ ]; };
      systemd.services = mkOption { type = types.attrsOf serviceType; default = { }; };
      systemd.sockets = mkOption { type = types.attrsOf socketType; default = { }; };
      systemd.targets = mkOption { type = types.attrsOf targetType; default = { }; };
      environment.etc = mkOption {
        type = types.attrsOf (types.submodule {
          options.text = mkOption { type = types.nullOr types.lines; default = null; };
          options.mode = mkOption { type = types.str; default = "symlink"; };
        });
        default = { };
      };
      environment.systemPackages = mkOption { type = types.listOf types.unspecified; default = [ ]; };
      networking.firewall.allowedTCPPorts = mkOption { type = types.listOf types.port; default = [ ]; };
      specialisation = mkOption {
        type = types.attrsOf (types.submodule {
          options.configuration = mkOption { type = types.deferredModule; default = { }; };
        });
        default = { };
      };
      services.nginx = {
        enable = mkOption { type = types.bool; default = false; };
        defaultHTTPListenPort = mkOption { type = types.port; default = 80; };
        defaultSSLListenPort = mkOption { type = types.port; default = 443; };
        recommendedProxySettings = mkOption { type = types.bool; default = false; };
        commonHttpConfig = mkOption { type = types.lines; default = ""; };
        upstreams = mkOption { type = types.attrsOf upstreamType; default = { }; };
        virtualHosts = mkOption { type = types.attrsOf vhostType; default = { }; };
      };
      services.redis.servers = mkOption {
        type = types.attrsOf (types.submodule {
          options = {
            enable = mkOption { type = types.bool; default = false; };
            port = mkOption { type = types.port; default = 0; };
            bind = mkOption { type = types.nullOr types.str; default = "127.0.0.1"; };
            appendOnly = mkOption { type = types.bool; default = false; };
            appendFsync = mkOption { type = types.str; default = "everysec"; };
          };
        });
        default = { };
      };
    };
  };

  fakeNodes = lib.genAttrs [ "machine" "proxy" "backend1" "backend2" "client" ] (name: {
    networking.primaryIPAddress = {
      machine = "192.168.1.1";
      proxy = "192.168.1.2";
      backend1 = "192.168.1.3";
      backend2 = "192.168.1.4";
      client = "192.168.1.5";
    }.${name};
    system.build.toplevel = fakePath "nixos-system-${name}";
  });

  evalConfig = modules: (lib.evalModules {
    modules = [ stubs ../../nixos/module.nix { services.app.package = fakeApp; } ] ++ modules;
    specialArgs = {
      pkgs = fakePkgs;
      nodes = fakeNodes;
    };
  }).config;

  failed = config: map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);

  # What one evaluated configuration produced.
  summary = config: {
    failedAssertions = failed config;
    inherit (config.systemd) packages;
    sockets = config.systemd.sockets;
    services = lib.mapAttrs (_: s: { inherit (s) overrideStrategy wantedBy stopIfChanged restartTriggers serviceConfig; }) config.systemd.services;
    targets = config.systemd.targets;
    etc = lib.mapAttrs (_: f: f.text) config.environment.etc;
    firewall = config.networking.firewall.allowedTCPPorts;
    nginx = { inherit (config.services.nginx) enable upstreams virtualHosts commonHttpConfig; };
    redis = config.services.redis.servers;
  };

  expect = name: got: want:
    if got == want then true
    else throw "eval-module: ${name}\n  expected: ${builtins.toJSON want}\n  got:      ${builtins.toJSON got}";

  # ---- the module on its own ------------------------------------------------------------------
  minimal = evalConfig [{ services.app.enable = true; }];
  defaultsMatchLib =
    let
      fromModule = builtins.removeAttrs minimal.services.app [ "package" ];
      fromLib = app.normalize { enable = true; };
    in
    expect "module option defaults = nixos/lib.nix defaults" fromModule fromLib;

  layoutB = evalConfig [{
    services.app = {
      enable = true;
      instances = lib.genAttrs [ "8080" "8082" "8083" "8084" "8085" ] (_: { });
      nginx.enable = true;
      nginx.routes."/".instances = [ 8080 ];
      nginx.routes."/api/randoms".instances = [ 8082 8083 8084 8085 ];
    };
  }];
  cfgB = layoutB.services.app;
  layoutBMatchesLib = builtins.all (x: x) [
    (expect "sockets" layoutB.systemd.sockets."app@8082" ((app.sockets cfgB)."app@8082" // {
      enable = true;
      description = "";
      requiredBy = [ ];
      after = [ ];
      before = [ ];
      wants = [ ];
      requires = [ ];
      partOf = [ ];
      restartTriggers = [ ];
      unitConfig = { };
      listenStreams = [ ];
      socketConfig = { };
    }))
    (expect "service drop-in" (summary layoutB).services."app@8082" {
      overrideStrategy = "asDropin";
      wantedBy = [ ];
      stopIfChanged = false;
      restartTriggers = (app.services cfgB)."app@8082".restartTriggers;
      serviceConfig = { };
    })
    (expect "etc" (summary layoutB).etc (lib.mapAttrs (_: f: f.text) (app.etcFiles cfgB)))
    (expect "upstreams" (lib.mapAttrs (_: u: u.extraConfig) layoutB.services.nginx.upstreams) (lib.mapAttrs (_: u: u.extraConfig) (app.upstreams cfgB)))
    (expect "upstream servers" (builtins.attrNames layoutB.services.nginx.upstreams.app_api_randoms.servers) [ "127.0.0.1:8082" "127.0.0.1:8083" "127.0.0.1:8084" "127.0.0.1:8085" ])
    (expect "server parameters" layoutB.services.nginx.upstreams.app_api_randoms.servers."127.0.0.1:8082" { backup = false; max_fails = 1; fail_timeout = "10s"; })
    (expect "locations" (builtins.attrNames layoutB.services.nginx.virtualHosts.app.locations) [ "/" "/api/randoms" ])
    (expect "no assertion fails" (failed layoutB) [ ])
    (expect "lib assertions see the same nginx ports" (app.nginxListenPorts layoutB.services.nginx) [ 80 ])
  ];

  # Assertions through the module: nginx listening on 8080 (another vhost) and an instance there.
  seedMistake = evalConfig [{
    services.app = {
      enable = true;
      instances."8080" = { };
      instances."8081" = { mode = "cluster"; workers = 0; };
      nginx.enable = true;
      nginx.routes."/api/randoms".instances = [ 8081 8086 ];
    };
    services.nginx.virtualHosts.other.listen = [{ addr = "0.0.0.0"; port = 8080; }];
  }];
  seedMistakeFails = expect "assertions through the module" (map (m: builtins.head (builtins.split ":" m)) (failed seedMistake)) [
    ''services.app.instances."8080"''
    ''services.app.instances."8081".workers is 0''
    ''services.app.nginx.routes."/api/randoms".instances names 8086, which is not in services.app.instances on this host (known''
  ];

  redis = evalConfig [{ services.app = { enable = true; redis.enable = true; instances."8082" = { }; }; }];
  redisOk = builtins.all (x: x) [
    (expect "redis server" redis.services.redis.servers.app { enable = true; port = 6379; bind = "127.0.0.1"; appendOnly = false; appendFsync = "everysec"; })
    (expect "redis url" (builtins.match ".*APP_REDIS_URL=\"redis://127.0.0.1:6379\".*" redis.environment.etc."app/8082.env".text) [ ])
  ];

  # redis.enable = null (the default): a local Redis when chat has several processes, or the
  # todos are in Redis; none for one fork instance, and none when redisUrl points elsewhere.
  autoRedis = instances: extra: (evalConfig [{ services.app = { enable = true; inherit instances; } // extra; }]);
  twoInstances = autoRedis { "8082" = { }; "8085" = { }; } { };
  oneInstance = autoRedis { "8082" = { }; } { };
  todosInRedis = autoRedis { "8082" = { }; } { todosStore = "redis"; };
  remoteRedis = autoRedis { "8082" = { }; "8085" = { }; } { redisUrl = "redis://10.0.0.5:6379"; todosStore = "redis"; };
  forcedOff = autoRedis { "8082" = { }; "8085" = { }; } { redis.enable = false; };
  noRedisAtAll = autoRedis { "8082" = { }; } { todosStore = "redis"; redis.enable = false; };
  autoRedisOk = builtins.all (x: x) [
    (expect "two instances: local redis" (twoInstances.services.redis.servers.app.enable or false) true)
    (expect "two instances: ordered after it" (map (n: twoInstances.systemd.services.${n}.after) [ "app@8082" "app@8085" ]) [ [ "redis-app.service" ] [ "redis-app.service" ] ])
    (expect "two instances: wanting it" twoInstances.systemd.services."app@8085".wants [ "redis-app.service" ])
    (expect "one fork instance: no redis" [ oneInstance.services.redis.servers oneInstance.systemd.services."app@8082".after ] [{ } [ ]])
    (expect "todos in redis: fsynced local redis" todosInRedis.services.redis.servers.app { enable = true; port = 6379; bind = "127.0.0.1"; appendOnly = true; appendFsync = "always"; })
    (expect "todos in redis: env" (builtins.match ".*APP_TODOS_STORE=\"redis\".*" todosInRedis.environment.etc."app/8082.env".text) [ ])
    (expect "remote redis: none local" [ remoteRedis.services.redis.servers (failed remoteRedis) ] [{ } [ ]])
    (expect "remote redis: url" (builtins.match ".*APP_REDIS_URL=\"redis://10.0.0.5:6379\".*" remoteRedis.environment.etc."app/8085.env".text) [ ])
    (expect "forced off: a warning, no redis" [ forcedOff.services.redis.servers (builtins.length forcedOff.warnings) ] [{ } 1])
    (expect "todos in redis without one: the assertion" (map (m: builtins.head (builtins.split "," m)) (failed noRedisAtAll)) [ ''services.app.todosStore = "redis" needs a Redis'' ])
  ];

  disabled = evalConfig [{ services.app.instances."8082" = { }; }];
  disabledOk = expect "a disabled module sets nothing" [ disabled.systemd.services disabled.environment.etc disabled.services.nginx.enable ] [{ } { } false];

  # ---- the VM tests' nodes (and their specialisations) ----------------------------------------
  vmTestDir = ../../nixos/tests;
  vmTestFiles = builtins.filter (n: lib.hasSuffix ".nix" n && (builtins.readDir vmTestDir).${n} == "regular") (builtins.attrNames (builtins.readDir vmTestDir));
  vmTest = file:
    let
      test = import (vmTestDir + "/${file}") { pkgs = fakePkgs; self = fakeSelf; };
      nodeSummary = node:
        let
          config = evalConfig [ node ];
          specs = lib.mapAttrs (_: s: summary (evalConfig [ node s.configuration ])) config.specialisation;
        in
        summary config // { specialisations = specs; };
      nodes = lib.mapAttrs (_: nodeSummary) test.nodes;
      testScript = if builtins.isFunction test.testScript then test.testScript { nodes = fakeNodes; } else test.testScript;
      allFailures = lib.concatMap (n: n.failedAssertions ++ lib.concatMap (s: s.failedAssertions) (builtins.attrValues n.specialisations)) (builtins.attrValues nodes);
    in
    assert expect "${file}: no failed assertions" allFailures [ ];
    { inherit (test) name; inherit nodes testScript; };

  # ---- the flake, with nixpkgs replaced by the library and placeholders -------------------------
  flakePkgs = system: fakePkgs // {
    stdenv.hostPlatform.system = system;
    callPackage = f: args: import f ({
      inherit lib;
      coreutils = fakePath "coreutils";
      systemd = fakePath "systemd";
      rustPlatform.buildRustPackage = attrs: attrs // { type = "derivation"; outPath = fakePath "app"; name = "app"; };
    } // args);
    writeText = name: text: builtins.seq text (fakePath name);
    mkShell = attrs: attrs;
  } // lib.genAttrs [ "cargo" "rustc" "clippy" "rustfmt" "rust-analyzer" "nginx" "redis" "jq" "deadnix" "nixpkgs-fmt" ] fakePath;
  flake = (import ../../flake.nix).outputs {
    self = flake;
    nixpkgs = {
      inherit lib;
      legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] flakePkgs;
    };
  };
  flakeOk = builtins.all (x: x) [
    (expect "flake outputs" (builtins.attrNames flake) [ "apps" "checks" "devShells" "formatter" "nixosModules" "packages" ])
    (expect "systems" (builtins.attrNames flake.packages) [ "aarch64-linux" "x86_64-linux" ])
    (expect "checks" (builtins.attrNames flake.checks.x86_64-linux) (lib.sort lib.lessThan ([ "logic" "package" ] ++ map (lib.removeSuffix ".nix") vmTestFiles)))
    (expect "package name" flake.packages.x86_64-linux.default.pname "app")
    (expect "cargoLock" flake.packages.x86_64-linux.default.cargoLock.lockFile ../../Cargo.lock)
    (expect "app" flake.apps.x86_64-linux.default.program "${fakePath "app"}/bin/app")
    (expect "module is a function" (builtins.isFunction flake.nixosModules.default) true)
  ];
in
assert defaultsMatchLib && layoutBMatchesLib && seedMistakeFails && redisOk && autoRedisOk && disabledOk && flakeOk;
{
  module = {
    minimal = summary minimal;
    layoutB = summary layoutB;
    seedMistake = failed seedMistake;
  };
  vmTests = lib.genAttrs vmTestFiles vmTest;
  flake = {
    checks = builtins.attrNames flake.checks.x86_64-linux;
    postInstall = flake.packages.x86_64-linux.default.postInstall;
    src = "${flake.packages.x86_64-linux.default.src}";
  };
}
