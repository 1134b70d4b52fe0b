# NixOS module for app: instances of the packaged, socket-activated units app@PORT.socket /
# app@PORT.service, an nginx upstream per route, and (optionally) a local Redis.
# The options are declared here; what they produce is computed by ./lib.nix (builtins only,
# unit-tested by tests/nix/lib-test.nix).
{ config, lib, pkgs, ... }:

let
  app = import ./lib.nix;
  d = app.defaults;
  cfg = config.services.app;
  inherit (lib) mkOption mkEnableOption mkIf mkMerge types literalExpression;

  # Settings are the binary's flags without the leading dashes: drain-timeout = 10 becomes
  # APP_DRAIN_TIMEOUT=10 in the instance's environment file.
  settingValue = with types; nullOr (oneOf [ bool int float str (listOf (oneOf [ int str ])) ]);
  settingsOption = description: mkOption {
    type = types.attrsOf settingValue;
    default = { };
    example = literalExpression ''{ drain-timeout = 10; max-body-bytes = 1048576; }'';
    inherit description;
  };

  instanceModule = { name, ... }: {
    options = {
      enable = mkOption {
        type = types.bool;
        default = app.instanceDefaults.enable;
        description = "Whether to run the instance on port ${name}.";
      };
      mode = mkOption {
        type = types.nullOr (types.enum app.modes);
        default = app.instanceDefaults.mode;
        description = "`fork` (one process) or `cluster` (a primary and `workers` processes); null: `services.app.defaults.mode`.";
      };
      workers = mkOption {
        type = types.nullOr types.int;
        default = app.instanceDefaults.workers;
        description = "Worker processes in cluster mode (at least 1); null: `services.app.defaults.workers`.";
      };
      threads = mkOption {
        type = types.nullOr types.int;
        default = app.instanceDefaults.threads;
        description = "Runtime threads per process; null: `services.app.defaults.threads`.";
      };
      lazy = mkOption {
        type = types.bool;
        default = app.instanceDefaults.lazy;
        description = ''
          Start the service on the first connection to its socket (socket activation). When false
          it also starts at boot with app.target.
        '';
      };
      settings = settingsOption "Flags for this instance only, merged over `services.app.settings`.";
      environment = mkOption {
        type = types.attrsOf types.str;
        default = app.instanceDefaults.environment;
        description = "Extra environment variables for this instance, merged over `services.app.environment`.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = app.instanceDefaults.extraArgs;
        description = "Arguments appended to `services.app.extraArgs` for this instance.";
      };
    };
  };

  routeModule = {
    options = {
      instances = mkOption {
        type = types.listOf (types.either types.port types.str);
        default = app.routeDefaults.instances;
        example = [ 8082 8083 8084 8085 ];
        description = "Ports of instances on this host (keys of `services.app.instances`) that serve this path.";
      };
      backends = mkOption {
        type = types.listOf types.str;
        default = app.routeDefaults.backends;
        example = [ "backend1:8082" "10.0.0.3:8082" ];
        description = "Instances on other hosts, as HOST:PORT, that serve this path (a load-balancer host).";
      };
      balancing = mkOption {
        type = types.nullOr (types.enum app.balancingMethods);
        default = app.routeDefaults.balancing;
        description = "Balancing method of this route's upstream; null: `services.app.nginx.balancing`.";
      };
      keepalive = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = app.routeDefaults.keepalive;
        description = "Idle upstream connections kept per nginx worker; null: `services.app.nginx.keepalive`.";
      };
      websockets = mkOption {
        type = types.nullOr types.bool;
        default = app.routeDefaults.websockets;
        description = "Pass WebSocket upgrades; null: `services.app.nginx.websockets`.";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = app.routeDefaults.extraConfig;
        description = "Extra nginx directives for this location.";
      };
      priority = mkOption {
        type = types.int;
        default = app.routeDefaults.priority;
        description = "Order of the location block (see `services.nginx.virtualHosts.<name>.locations.<name>.priority`).";
      };
    };
  };
in
{
  options.services.app = {
    enable = mkEnableOption "app, the socket-activated HTTP server (instances of app@PORT.socket / app@PORT.service)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The app package; it must ship the units under lib/systemd/system.";
    };

    instances = mkOption {
      type = types.attrsOf (types.submodule instanceModule);
      default = d.instances;
      example = literalExpression ''
        {
          "8080" = { };
          "8081" = { mode = "cluster"; workers = 4; };
        }
      '';
      description = "The instances on this host, keyed by TCP port.";
    };

    defaults = {
      mode = mkOption {
        type = types.enum app.modes;
        default = d.defaults.mode;
        description = "Mode of instances that do not set one.";
      };
      workers = mkOption {
        type = types.nullOr types.int;
        default = d.defaults.workers;
        description = "Workers of instances that do not set them (null: the binary's default, one per CPU).";
      };
      threads = mkOption {
        type = types.nullOr types.int;
        default = d.defaults.threads;
        description = "Runtime threads per process of instances that do not set them (null: the binary's default, 1).";
      };
    };

    listenAddress = mkOption {
      type = types.str;
      default = d.listenAddress;
      example = "0.0.0.0";
      description = ''
        Address the instances' sockets listen on. The packaged socket listens on 127.0.0.1; any
        other value replaces it in a drop-in. Use 0.0.0.0 on a backend behind another host's nginx.
        A changed socket takes effect when the socket restarts (not on a switch).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = d.openFirewall;
      description = "Open nginx's port, and the instances' ports when they listen beyond loopback.";
    };

    logLevel = mkOption {
      type = types.str;
      default = d.logLevel;
      example = "info,app=debug";
      description = "RUST_LOG of every instance.";
    };

    settings = settingsOption ''
      Flags of the binary for every instance, without the dashes; each becomes an APP_* variable
      in /etc/app/PORT.env (drain-timeout = 10 gives APP_DRAIN_TIMEOUT=10). Mode, workers,
      threads, Redis and trusted proxies have their own options.
    '';

    environment = mkOption {
      type = types.attrsOf types.str;
      default = d.environment;
      description = "Extra environment variables for every instance (written to /etc/app/PORT.env, world-readable).";
    };

    environmentFiles = mkOption {
      type = types.listOf types.path;
      default = d.environmentFiles;
      example = [ "/run/secrets/app.env" ];
      description = "Environment files outside the Nix store (secrets), read after /etc/app/PORT.env.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = d.extraArgs;
      description = ''
        Arguments for every instance. When set, the drop-in replaces the packaged ExecStart=;
        prefer `settings`, which needs no such replacement.
      '';
    };

    trustedProxies = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = d.trustedProxies;
      example = [ "10.0.0.1/32" ];
      description = "CIDRs whose X-Forwarded-For is believed; null: loopback when services.app.nginx.enable, else none.";
    };

    redisUrl = mkOption {
      type = types.nullOr types.str;
      default = d.redisUrl;
      example = "redis://10.0.0.5:6379";
      description = "Redis shared by the instances and hosts (chat fan-out, todos with todosStore = \"redis\"); null: the local one when `redis.enable` (or its automatic default) says so.";
    };

    todosStore = mkOption {
      type = types.enum app.todosStores;
      default = d.todosStore;
      description = ''
        Where the todos live (APP_TODOS_STORE). `sqlite`: one file in the state directory
        /var/lib/app, shared by every instance on this host. `redis`: the Redis of `redisUrl`
        (or the local one), shared by every host; the local Redis then fsyncs each write.
      '';
    };

    redis = {
      enable = mkOption {
        type = types.nullOr types.bool;
        default = d.redis.enable;
        example = true;
        description = ''
          Run a local Redis (services.redis.servers.app on 127.0.0.1:`port`) and point the
          instances at it. null (the default): only when needed and `redisUrl` is null, that is
          when `todosStore` is `redis`, or when chat has more than one process on this host (two or
          more instances, or a cluster-mode instance), since chat rooms reach other processes only
          through Redis. true or false force it.
        '';
      };
      port = mkOption {
        type = types.port;
        default = d.redis.port;
        description = "TCP port of the local Redis (bound to 127.0.0.1).";
      };
    };

    nginx = {
      enable = mkEnableOption "an nginx virtual host that proxies services.app.nginx.routes";
      virtualHost = mkOption {
        type = types.str;
        default = d.nginx.virtualHost;
        description = "Name of the services.nginx.virtualHosts entry (extend it there: serverName, TLS).";
      };
      port = mkOption {
        type = types.nullOr types.port;
        default = d.nginx.port;
        example = 8080;
        description = "Port of the virtual host; null: nginx's defaults (80, and 443 with TLS).";
      };
      listenAddresses = mkOption {
        type = types.listOf types.str;
        default = d.nginx.listenAddresses;
        description = "Addresses the virtual host listens on when `port` is set.";
      };
      routes = mkOption {
        type = types.attrsOf (types.submodule routeModule);
        default = d.nginx.routes;
        example = literalExpression ''
          {
            "/".instances = [ 8080 ];
            "/api/randoms".instances = [ 8082 8083 8084 8085 ];
          }
        '';
        description = "Locations of the virtual host, each with its own upstream of instances and/or remote backends.";
      };
      balancing = mkOption {
        type = types.enum app.balancingMethods;
        default = d.nginx.balancing;
        description = "Balancing method of the upstreams.";
      };
      keepalive = mkOption {
        type = types.ints.unsigned;
        default = d.nginx.keepalive;
        description = "Idle upstream connections kept per nginx worker (0: none).";
      };
      websockets = mkOption {
        type = types.bool;
        default = d.nginx.websockets;
        description = "Pass WebSocket upgrades (Upgrade/Connection headers) to the instances.";
      };
      maxFails = mkOption {
        type = types.ints.unsigned;
        default = d.nginx.maxFails;
        description = "Failed attempts after which a server is skipped for failTimeout (passive health check).";
      };
      failTimeout = mkOption {
        type = types.str;
        default = d.nginx.failTimeout;
        description = "How long a failed server is skipped.";
      };
      connectTimeout = mkOption {
        type = types.str;
        default = d.nginx.connectTimeout;
        description = "proxy_connect_timeout: how soon an unreachable backend is given up for the next one.";
      };
      readTimeout = mkOption {
        type = types.str;
        default = d.nginx.readTimeout;
        description = "proxy_read_timeout: longest silence from a backend (idle WebSockets rely on the app's pings).";
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions = app.assertions cfg { nginxPorts = app.nginxListenPorts config.services.nginx; };
      warnings = app.warnings cfg;

      # The packaged units (lib/systemd/system) and drop-ins for their instances.
      systemd.packages = [ cfg.package ];
      systemd.targets.app = app.target;
      systemd.sockets = app.sockets cfg;
      systemd.services = app.services cfg;

      environment.etc = app.etcFiles cfg;
      networking.firewall.allowedTCPPorts = app.firewallPorts cfg;
    }

    (mkIf cfg.nginx.enable {
      services.nginx = {
        enable = true;
        upstreams = app.upstreams cfg;
        commonHttpConfig = app.httpConfig cfg;
        virtualHosts.${cfg.nginx.virtualHost} = app.virtualHost cfg;
      };
    })

    (mkIf (app.localRedis cfg) {
      services.redis.servers.app = app.redisServer cfg;
    })
  ]);
}
