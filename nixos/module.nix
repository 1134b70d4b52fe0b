# NixOS module for app: instances of the packaged, socket-activated units app@PORT.socket /
# app@PORT.service, an nginx upstream per route with the package's own proxy policy
# (share/app/nginx: the files the Debian layouts use), a local Redis when the host needs one, and
# a Prometheus scrape job when the host runs Prometheus. What one instance's units, environment
# file and upstream contain is computed by ./lib.nix (pure, checked by the test command without
# nixpkgs); options, defaults, fallbacks and assertions are here.
{ config, lib, pkgs, ... }:

let
  app = import ./lib.nix;
  cfg = config.services.app;
  inherit (lib)
    all attrNames attrValues concatMap elem filter filterAttrs length literalExpression literalMD
    mapAttrs mapAttrs' mapAttrsToList mkDefault mkEnableOption mkIf mkMerge mkOption
    mkRemovedOptionModule mkRenamedOptionModule nameValuePair optional optionals sort toInt types
    unique;

  # The package's nginx files (conf.d/app.conf, snippets/app-{proxy,upstream}.conf).
  nginxDir = "${cfg.package}/share/app/nginx";

  # Enabled instances, in port order.
  instances = filterAttrs (_: i: i.enable) cfg.instances;
  instanceNames = sort (a: b: toInt a < toInt b) (filter app.isPortName (attrNames instances));
  instancePorts = map toInt instanceNames;

  # More than one process on this host serves chat clients: several instances, or a cluster
  # (each worker is a process). Chat rooms then reach every client only through Redis.
  multiProcess = length instanceNames > 1 || lib.any (i: i.mode == "cluster") (attrValues instances);
  sentinel = cfg.redisSentinel;
  redisUrl =
    if cfg.redisUrl != null then cfg.redisUrl
    else if sentinel.hosts != [ ] then app.sentinelUrl sentinel
    else if cfg.redis.enable then "redis://127.0.0.1:${toString cfg.redis.port}"
    else null;
  hasRedis = redisUrl != null || cfg.redisUrlFile != null;

  # Sizes as systemd and the binary read them: bytes, or K/M/G/T (1024-based).
  size = types.strMatching "[0-9]+[KMGT]?";
  # MemoryHigh=/MemoryMax= also take a percentage of RAM, or infinity.
  memorySize = types.strMatching "[0-9]+[KMGT]?|[0-9]+(\\.[0-9]+)?%|infinity";

  # Settings are the binary's flags without the leading dashes: drain-timeout = 10 becomes
  # APP_DRAIN_TIMEOUT=10 in the instance's environment file.
  settingsType = with types; attrsOf (nullOr (oneOf [ bool int float singleLineStr (listOf (oneOf [ int singleLineStr ])) ]));
  # Flags with their own option (or set by the unit): not accepted in `settings`/`environment`.
  reservedSettings = [ "port" "instance" "mode" "workers" "threads" "worker-max-memory" "redis-url" "redis-url-file" "todos-store" "data-dir" "trusted-proxies" ];

  # Options an instance may set for itself; unset, it takes the service-wide value
  # (services.app.NAME), which has the default.
  perInstanceOptions = {
    mode = {
      type = types.enum [ "fork" "cluster" ];
      default = "fork";
      description = "`fork` (one process) or `cluster` (a primary and `workers` processes).";
    };
    workers = {
      type = types.nullOr types.ints.positive;
      default = null;
      description = "Worker processes in cluster mode; null: one per CPU.";
    };
    threads = {
      type = types.nullOr types.ints.positive;
      default = null;
      description = "Runtime threads per process; null: the binary's default (1).";
    };
    workerMaxMemory = {
      type = types.nullOr size;
      default = null;
      example = "512M";
      description = "Resident size above which a cluster worker is replaced (APP_WORKER_MAX_MEMORY); null: no limit.";
    };
    memoryHigh = {
      type = types.nullOr memorySize;
      default = null;
      example = "768M";
      description = "systemd MemoryHigh= of the instance (throttled above it); null: none.";
    };
    memoryMax = {
      type = types.nullOr memorySize;
      default = null;
      example = "1G";
      description = "systemd MemoryMax= of the instance (OOM-killed above it); null: none.";
    };
  };

  instanceModule = { name, ... }: {
    options = mapAttrs
      (n: o: mkOption (removeAttrs o [ "default" ] // {
        description = o.description + " Default: `services.app.${n}`.";
      }))
      perInstanceOptions // {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Whether to run the instance on port ${name}.";
      };
      lazy = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Start the service on the first connection to its socket (socket activation). When false
          it also starts at boot with app.target.
        '';
      };
      settings = mkOption {
        type = settingsType;
        default = { };
        description = "Flags for this instance, over `services.app.settings`.";
      };
      environment = mkOption {
        type = types.attrsOf types.singleLineStr;
        default = { };
        description = "Environment variables for this instance, over `services.app.environment`.";
      };
      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        description = "Arguments appended to `services.app.extraArgs` for this instance.";
      };
    };
    # The service-wide values, overridden by any definition for the instance.
    config = mapAttrs (n: _: mkDefault cfg.${n}) perInstanceOptions // {
      settings = mapAttrs (_: mkDefault) cfg.settings;
      environment = mapAttrs (_: mkDefault) cfg.environment;
    };
  };

  routeModule = {
    options = {
      instances = mkOption {
        type = types.listOf types.port;
        default = [ ];
        example = [ 8082 8083 8084 8085 ];
        description = "Ports of instances on this host (keys of `services.app.instances`) that serve this path.";
      };
      backends = mkOption {
        # An address, not a host name: a name can resolve to several addresses (IPv4 and IPv6),
        # and nginx would add each as a server of its own.
        type = types.listOf (types.strMatching "([0-9]{1,3}\\.){3}[0-9]{1,3}:[0-9]+|\\[[0-9A-Fa-f:.]+]:[0-9]+|unix:/.+");
        default = [ ];
        example = [ "10.0.0.2:8082" "[fd00::3]:8082" ];
        description = "Instances on other hosts, as ADDRESS:PORT, that serve this path (a load-balancer host).";
      };
      balancing = mkOption {
        type = types.enum [ "round-robin" "least_conn" "ip_hash" ];
        default = cfg.nginx.balancing;
        defaultText = literalExpression "config.services.app.nginx.balancing";
        description = "Balancing method of this route's upstream.";
      };
      extraConfig = mkOption {
        type = types.lines;
        default = "";
        description = "Extra nginx directives for this location (after the package's snippets/app-proxy.conf and app-requests.conf).";
      };
      priority = mkOption {
        type = types.int;
        default = 1000;
        description = "Order of the location block (see `services.nginx.virtualHosts.<name>.locations.<name>.priority`).";
      };
    };
  };

  # The route that serves the chat (/ws): Socket.IO goes to the same instances.
  chatRoute = app.routeServing cfg.nginx.routes "/ws";
  # The routes nginx proxies: the configured ones, and /socket.io/ when it is enabled.
  proxiedRoutes = if cfg.nginx.socketIo.enable then app.withSocketIo cfg.nginx.routes else cfg.nginx.routes;

  routeAddresses = r:
    map (p: app.formatListen (app.connectAddress cfg.listenAddress) p) r.instances ++ r.backends;

  # systemd units app@PORT, one per enabled instance.
  perInstance = unit: lib.listToAttrs (map (n: nameValuePair (app.unitName n) (unit n)) instanceNames);

  envOf = name:
    let i = instances.${name};
    in app.instanceEnv {
      inherit (i) mode workers threads workerMaxMemory settings environment;
      inherit (cfg) logLevel trustedProxies todosStore;
      inherit redisUrl;
    };
  envText = name: app.envFileText name (envOf name);

  # Ports nginx listens on, for the port-clash assertion and the firewall.
  nginxPorts = vhosts: unique (concatMap (app.vhostPorts config.services.nginx) vhosts);
  appVhostPorts = nginxPorts [ config.services.nginx.virtualHosts.${cfg.nginx.virtualHost} ];
  allNginxPorts = optionals config.services.nginx.enable (nginxPorts (attrValues config.services.nginx.virtualHosts));

  loopback = elem cfg.listenAddress [ "127.0.0.1" "::1" ];
  scrapeAddress = app.connectAddress cfg.listenAddress;
in
{
  imports = [
    (mkRenamedOptionModule [ "services" "app" "defaults" "mode" ] [ "services" "app" "mode" ])
    (mkRenamedOptionModule [ "services" "app" "defaults" "workers" ] [ "services" "app" "workers" ])
    (mkRenamedOptionModule [ "services" "app" "defaults" "threads" ] [ "services" "app" "threads" ])
  ] ++ map
    (name: mkRemovedOptionModule [ "services" "app" "nginx" name ]
      "The proxy policy is the package's share/app/nginx/snippets/app-*.conf, the same for every deployment; use services.app.nginx.routes.<path>.extraConfig for additions.")
    [ "keepalive" "websockets" "maxFails" "failTimeout" "connectTimeout" "readTimeout" ];

  options.services.app = mapAttrs (_: mkOption) perInstanceOptions // {
    enable = mkEnableOption "app, the socket-activated HTTP server (instances of app@PORT.socket / app@PORT.service)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The app package; it ships the units under lib/systemd/system and the nginx policy under share/app/nginx.";
    };

    instances = mkOption {
      type = types.attrsOf (types.submodule instanceModule);
      default = { };
      example = literalExpression ''
        {
          "8080" = { };
          "8081" = { mode = "cluster"; workers = 4; };
        }
      '';
      description = "The instances on this host, keyed by TCP port.";
    };

    listenAddress = mkOption {
      type = types.str;
      default = app.packagedListenAddress;
      example = "0.0.0.0";
      description = ''
        Address the instances' sockets listen on. The packaged socket listens on 127.0.0.1; any
        other value replaces it in a drop-in. Use 0.0.0.0 on a backend behind another host's nginx.
        A changed socket takes effect when the socket restarts (not on a switch).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Open the ports the app's nginx virtual host listens on, and the instances' ports when they listen beyond loopback.";
    };

    logLevel = mkOption {
      type = types.singleLineStr;
      default = "info";
      example = "info,app=debug";
      description = "RUST_LOG of every instance.";
    };

    settings = mkOption {
      type = settingsType;
      default = { };
      example = literalExpression "{ drain-timeout = 10; max-body-bytes = 1048576; }";
      description = ''
        Flags of the binary for every instance, without the dashes; each becomes an APP_* variable
        in /etc/app/PORT.env (drain-timeout = 10 gives APP_DRAIN_TIMEOUT=10). Mode, workers,
        threads, memory, Redis and trusted proxies have their own options.
      '';
    };

    environment = mkOption {
      type = types.attrsOf types.singleLineStr;
      default = { };
      description = "Environment variables for every instance (written to /etc/app/PORT.env, world-readable: no secrets).";
    };

    environmentFiles = mkOption {
      type = types.listOf types.path;
      default = [ ];
      example = [ "/run/secrets/app.env" ];
      description = "Environment files outside the Nix store (secrets), read after /etc/app/PORT.env.";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = ''
        Arguments for every instance. When set, the drop-in replaces the packaged ExecStart=;
        prefer `settings`, which needs no such replacement.
      '';
    };

    trustedProxies = mkOption {
      type = types.listOf types.str;
      default = optionals cfg.nginx.enable [ "127.0.0.1/32" "::1/128" ];
      defaultText = literalExpression ''lib.optionals config.services.app.nginx.enable [ "127.0.0.1/32" "::1/128" ]'';
      example = [ "10.0.0.1/32" ];
      description = "CIDRs whose X-Forwarded-For the instances believe.";
    };

    redisUrl = mkOption {
      type = types.nullOr types.singleLineStr;
      default = null;
      example = "redis://10.0.0.5:6379";
      description = ''
        Redis shared by the instances and hosts (chat fan-out, todos with todosStore = "redis"),
        written to /etc/app/PORT.env: use `redisUrlFile` when the URL holds a password. A Sentinel
        URL (`redis+sentinel://HOST:26379,HOST:26379/MASTER/DB`) works here too; `redisSentinel`
        writes one.
      '';
    };

    redisSentinel = {
      hosts = mkOption {
        type = types.listOf (types.strMatching "[^,/@?]+");
        default = [ ];
        example = [ "10.0.0.1:26379" "10.0.0.2:26379" "10.0.0.3:26379" ];
        description = ''
          Redis Sentinels (HOST:PORT; `[IPV6]:PORT`) that name the master the instances use, so a
          fail-over moves them to the promoted replica without a restart. Sets the instances'
          Redis URL to `redis+sentinel://HOSTS/masterName/db`. A master with a password: put the
          whole URL (`redis+sentinel://:PASSWORD@HOSTS/MASTER/DB`) in `redisUrlFile` instead. To
          keep every acknowledged todo write through a fail-over, also set
          `settings.todos-wait-replicas` (below the number of replicas, see the README).
        '';
      };
      masterName = mkOption {
        type = types.strMatching "[A-Za-z0-9._:-]+";
        default = "mymaster";
        description = "The master's name, as the sentinels' `sentinel monitor NAME ...` gives it.";
      };
      db = mkOption {
        type = types.ints.between 0 65535;
        default = 0;
        description = "The Redis database the instances use.";
      };
    };

    redisUrlFile = mkOption {
      # A string, never a Nix path: a path would be copied into the world-readable store.
      type = types.nullOr (types.strMatching "/.+");
      default = null;
      example = "/run/secrets/app-redis-url";
      description = ''
        File whose first line is the Redis URL, handed to every instance as the systemd credential
        `redis-url` (LoadCredential=), so it is in neither the Nix store nor an environment file.
      '';
    };

    todosStore = mkOption {
      type = types.enum [ "sqlite" "redis" ];
      default = "sqlite";
      description = ''
        Where the todos live (APP_TODOS_STORE). `sqlite`: one file in the state directory
        /var/lib/app, shared by every instance on this host. `redis`: the Redis of `redisUrl`
        (or the local one), shared by every host; the local Redis then fsyncs each write.
      '';
    };

    redis = {
      enable = mkOption {
        type = types.bool;
        default = cfg.redisUrl == null && cfg.redisUrlFile == null && cfg.redisSentinel.hosts == [ ]
          && (cfg.todosStore == "redis" || multiProcess);
        defaultText = literalMD ''
          `true` when none of `redisUrl`, `redisUrlFile` and `redisSentinel.hosts` is set and a Redis is needed: the todos
          live in Redis, or chat has more than one process on this host (two or more instances,
          or a cluster-mode instance), since chat rooms reach other processes only through Redis.
        '';
        description = "Run a local Redis (services.redis.servers.app on 127.0.0.1:`port`) and point the instances at it.";
      };
      port = mkOption {
        type = types.port;
        default = 6379;
        description = "TCP port of the local Redis (bound to 127.0.0.1).";
      };
    };

    prometheus.scrape = mkOption {
      type = types.bool;
      default = config.services.prometheus.enable;
      defaultText = literalExpression "config.services.prometheus.enable";
      description = "Add every instance's /metrics to services.prometheus.scrapeConfigs (job `app`).";
    };

    nginx = {
      enable = mkEnableOption "an nginx virtual host that proxies services.app.nginx.routes";
      virtualHost = mkOption {
        type = types.str;
        default = "app";
        description = "Name of the services.nginx.virtualHosts entry (extend it there: serverName, TLS).";
      };
      defaultServer = mkOption {
        type = types.bool;
        default = true;
        description = "Make the virtual host nginx's default server, so requests by IP or with another Host reach the app.";
      };
      port = mkOption {
        type = types.nullOr types.port;
        default = null;
        example = 8080;
        description = "Port of the virtual host; null: nginx's defaults (services.nginx.defaultListen or defaultHTTPListenPort, and the SSL one with TLS).";
      };
      listenAddresses = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "10.0.0.1" "[fd00::1]" ];
        description = ''
          Addresses the virtual host listens on when `port` is set; empty: every address of
          `services.nginx.defaultListenAddresses` (IPv6 included), as for a virtual host's own
          `listenAddresses`.
        '';
      };
      routes = mkOption {
        type = types.attrsOf (types.submodule routeModule);
        default = { };
        example = literalExpression ''
          {
            "/".instances = [ 8080 ];
            "/api/randoms".instances = [ 8082 8083 8084 8085 ];
          }
        '';
        description = "Locations of the virtual host, each with its own upstream of instances and/or remote backends.";
      };
      balancing = mkOption {
        type = types.enum [ "round-robin" "least_conn" "ip_hash" ];
        default = "round-robin";
        description = "Balancing method of the routes that do not set their own.";
      };
      socketIo.enable = mkOption {
        type = types.bool;
        default = chatRoute != null;
        defaultText = literalMD "`true` when a route serves `/ws` (the chat)";
        description = ''
          A location `/socket.io/` for Socket.IO clients, over the instances and backends of the
          route that serves `/ws`, behind an upstream that keeps each client on one of them
          (`hash $remote_addr consistent`: HTTP long-polling sessions live in one process), with
          the package's snippets/app-socketio.conf (retries only of what reached no live
          instance and of a handshake refused with 503, `proxy_read_timeout 60s`, above
          Engine.IO's 25 s ping interval).
        '';
      };
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        let
          badNames = filter (n: !app.isPortName n) (attrNames cfg.instances);
          reservedUsed = filter (k: cfg.settings ? ${k} || lib.any (i: i.settings ? ${k} || i.environment ? ${app.settingEnvName k}) (attrValues instances)) reservedSettings;
          badEnvNames = filter (k: builtins.match "[A-Za-z_][A-Za-z0-9_]*" k == null) (concatMap (n: attrNames (envOf n)) instanceNames);
          upstreams = mapAttrsToList (p: _: app.upstreamName p) proxiedRoutes;
          route = p: r: [
            {
              assertion = all (port: elem port instancePorts) r.instances;
              message = "services.app.nginx.routes.\"${p}\".instances: no enabled services.app.instances for ${toString (filter (port: !elem port instancePorts) r.instances)}.";
            }
            {
              assertion = r.instances != [ ] || r.backends != [ ];
              message = "services.app.nginx.routes.\"${p}\": set instances or backends.";
            }
            {
              assertion = length (unique (routeAddresses r)) == length (routeAddresses r);
              message = "services.app.nginx.routes.\"${p}\" lists an address twice.";
            }
          ];
        in
        [
          {
            assertion = badNames == [ ];
            message = "services.app.instances: an instance is named by its TCP port (1 to 65535, no leading zero), not ${toString badNames}.";
          }
          {
            assertion = reservedUsed == [ ];
            message = "services.app: ${toString reservedUsed} has its own option; remove it from settings/environment.";
          }
          {
            assertion = badEnvNames == [ ];
            message = "services.app: invalid environment variable name(s) ${toString badEnvNames}.";
          }
          {
            assertion = cfg.redisUrl != null -> cfg.redisUrlFile == null;
            message = "services.app: set redisUrl or redisUrlFile, not both.";
          }
          {
            assertion = sentinel.hosts != [ ] -> cfg.redisUrl == null && cfg.redisUrlFile == null && !cfg.redis.enable;
            message = "services.app.redisSentinel.hosts gives the Redis URL: set neither redisUrl, redisUrlFile nor redis.enable with it.";
          }
          {
            assertion = cfg.todosStore == "redis" -> hasRedis;
            message = "services.app.todosStore = \"redis\" needs redisUrl, redisUrlFile or redis.enable.";
          }
          {
            assertion = cfg.redis.enable -> !elem cfg.redis.port instancePorts;
            message = "services.app.redis.port ${toString cfg.redis.port} is also an instance's port.";
          }
          {
            assertion = lib.intersectLists allNginxPorts instancePorts == [ ];
            message = "services.app: port(s) ${toString (lib.intersectLists allNginxPorts instancePorts)} are both an instance's and one nginx listens on.";
          }
          {
            assertion = cfg.nginx.enable -> cfg.nginx.routes != { };
            message = "services.app.nginx.enable needs at least one services.app.nginx.routes entry.";
          }
          {
            assertion = cfg.nginx.enable && cfg.nginx.socketIo.enable -> chatRoute != null;
            message = "services.app.nginx.socketIo.enable needs a route that serves /ws (e.g. routes.\"/\"): Socket.IO goes to the chat's instances.";
          }
          {
            assertion = cfg.nginx.enable && cfg.nginx.socketIo.enable -> !(cfg.nginx.routes ? ${app.socketIoPath});
            message = "services.app.nginx.routes.\"${app.socketIoPath}\" is generated by services.app.nginx.socketIo; set socketIo.enable = false to write it yourself.";
          }
          {
            assertion = length (unique upstreams) == length upstreams;
            message = "services.app.nginx.routes: two paths give the same upstream name (they differ only in punctuation).";
          }
        ]
        ++ optionals cfg.nginx.enable (concatMap (p: route p cfg.nginx.routes.${p}) (attrNames cfg.nginx.routes));

      warnings = optional (multiProcess && !hasRedis)
        "services.app: without Redis (redis.enable = false, no redisUrl), a chat message reaches only the clients of the process it was sent to.";

      # The packaged units (lib/systemd/system) and drop-ins for their instances.
      systemd.packages = [ cfg.package ];
      systemd.targets.app = {
        overrideStrategy = "asDropin";
        wantedBy = [ "multi-user.target" ];
      };
      systemd.sockets = perInstance (n: app.socketUnit { port = n; inherit (cfg) listenAddress; });
      systemd.services = perInstance (n:
        let i = instances.${n};
        in app.serviceUnit {
          inherit (i) lazy memoryHigh memoryMax;
          inherit (cfg) redisUrlFile;
          envText = envText n;
          requires = optional cfg.redis.enable "redis-app.service";
          environmentFiles = map toString cfg.environmentFiles;
          execStart =
            if cfg.extraArgs ++ i.extraArgs == [ ] then null
            else lib.concatStringsSep " " ([ "${cfg.package}/bin/app" ] ++ map app.quoteExecArg (cfg.extraArgs ++ i.extraArgs));
        });

      # /etc/app/PORT.env, read by the unit's EnvironmentFile=-/etc/app/%i.env.
      environment.etc = lib.listToAttrs (map (n: nameValuePair "app/${n}.env" { text = envText n; }) instanceNames);

      networking.firewall.allowedTCPPorts = mkIf cfg.openFirewall
        (optionals cfg.nginx.enable appVhostPorts ++ optionals (!loopback) instancePorts);
    }

    (mkIf cfg.nginx.enable {
      services.nginx = {
        enable = true;
        commonHttpConfig = app.httpConfig nginxDir;
        upstreams = mapAttrs'
          (p: r: nameValuePair (app.upstreamName p) (app.upstream {
            addresses = routeAddresses r;
            inherit (r) balancing;
            inherit nginxDir;
          }))
          proxiedRoutes;
        virtualHosts.${cfg.nginx.virtualHost} = {
          default = cfg.nginx.defaultServer;
          extraConfig = "access_log /var/log/nginx/access.log app_upstream;\n";
          locations = mapAttrs
            (p: r: app.location {
              upstreamName = app.upstreamName p;
              inherit (r) priority extraConfig;
              inherit nginxDir;
              retries = r.retries or "requests";
            })
            proxiedRoutes;
          # Empty (nginx's own listen defaults) unless services.app.nginx.port is set.
          listen = app.vhostListen config.services.nginx { inherit (cfg.nginx) port listenAddresses; };
        };
      };
    })

    (mkIf cfg.redis.enable {
      # With the todos in it, every write is fsynced before Redis answers, so a 201 means
      # durable as with SQLite; chat alone (pub/sub) keeps nothing.
      services.redis.servers.app = {
        enable = true;
        inherit (cfg.redis) port;
        bind = "127.0.0.1";
      } // lib.optionalAttrs (cfg.todosStore == "redis") {
        appendOnly = true;
        appendFsync = "always";
      };
    })

    (mkIf cfg.prometheus.scrape {
      # /metrics answers loopback only by default (--metrics-allow): on a backend listening
      # beyond loopback, allow the Prometheus host in services.app.settings.metrics-allow.
      services.prometheus.scrapeConfigs = [{
        job_name = "app";
        static_configs = [{ targets = map (n: app.formatListen scrapeAddress n) instanceNames; }];
      }];
    })
  ]);
}
