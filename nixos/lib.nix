# The logic of the NixOS module `services.app`, written with Nix builtins only (no nixpkgs
# lib), so that `nix-instantiate --eval --strict` on a plain Nix 2.8 can test it
# (tests/nix/lib-test.nix). nixos/module.nix declares the options and calls these functions.
#
# Every function takes `cfg`, the value of `config.services.app` (or a partial attrset of the
# same shape: `normalize` fills in the defaults below, which the module also uses as its option
# defaults, so the two cannot drift apart).
let
  inherit (builtins)
    attrNames attrValues concatLists concatStringsSep elem filter foldl' genList hashString
    isBool isInt isList isString length listToAttrs lessThan mapAttrs match
    replaceStrings sort stringLength substring toJSON;

  # ---- small helpers (the nixpkgs lib equivalents, from builtins) -------------------------
  concatMap = f: l: concatLists (map f l);
  optional = c: x: if c then [ x ] else [ ];
  optionalAttrs = c: a: if c then a else { };
  # A per-instance or per-route setting, or the default when it is unset (null).
  pick = v: d: if v == null then d else v;
  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  count = x: l: length (filter (y: y == x) l);
  duplicates = l: unique (filter (x: count x l > 1) l);
  chars = s: genList (i: substring i 1 s) (stringLength s);
  lower = chars "abcdefghijklmnopqrstuvwxyz";
  upper = chars "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
  toUpper = replaceStrings lower upper;
  # split rather than match ".*x.*": `.` does not match a newline, and a long match recurses.
  hasInfix = needle: s: length (builtins.split (escapeRegex needle) s) > 1;
  # POSIX ERE: `]` and `}` are ordinary outside a bracket expression and must not be escaped.
  escapeRegex = replaceStrings
    [ "\\" "." "*" "+" "?" "(" ")" "[" "{" "|" "^" "$" ]
    [ "\\\\" "\\." "\\*" "\\+" "\\?" "\\(" "\\)" "\\[" "\\{" "\\|" "\\^" "\\$" ];
  # Show a value in a message the way it is written in Nix.
  show = v: if isString v then toJSON v else if isList v then "[ ${concatStringsSep " " (map show v)} ]" else toString v;
  showList = l: concatStringsSep ", " (map toString l);
  sortedNames = a: sort lessThan (attrNames a);

  # ---- ports --------------------------------------------------------------------------------
  # An instance's attribute name is its TCP port, written without leading zeros.
  isPortName = n: match "[1-9][0-9]{0,4}" n != null && fromDecimal n <= 65535;
  fromDecimal = s: foldl' (acc: c: acc * 10 + digit c) 0 (chars s);
  digit = c: {
    "0" = 0;
    "1" = 1;
    "2" = 2;
    "3" = 3;
    "4" = 4;
    "5" = 5;
    "6" = 6;
    "7" = 7;
    "8" = 8;
    "9" = 9;
  }.${c};
  # Routes may name an instance as 8082 or "8082".
  portKey = p: if isInt p then toString p else p;
in
rec {
  inherit toUpper unique duplicates hasInfix escapeRegex;

  # ---- defaults (also the module's option defaults) -------------------------------------------
  defaults = {
    enable = false;
    instances = { };
    defaults = {
      mode = "fork";
      # null: the binary's own default (cluster mode: one worker per CPU; threads: 1).
      workers = null;
      threads = null;
    };
    listenAddress = "127.0.0.1";
    openFirewall = false;
    logLevel = "info";
    settings = { };
    environment = { };
    environmentFiles = [ ];
    extraArgs = [ ];
    trustedProxies = null;
    redisUrl = null;
    todosStore = "sqlite";
    redis = {
      # null: automatic (localRedis below).
      enable = null;
      port = 6379;
    };
    nginx = {
      enable = false;
      virtualHost = "app";
      port = null;
      listenAddresses = [ "0.0.0.0" ];
      routes = { };
      balancing = "round-robin";
      keepalive = 32;
      websockets = true;
      maxFails = 1;
      failTimeout = "10s";
      connectTimeout = "5s";
      readTimeout = "60s";
    };
  };

  instanceDefaults = {
    enable = true;
    mode = null;
    workers = null;
    threads = null;
    lazy = true;
    settings = { };
    environment = { };
    extraArgs = [ ];
  };

  routeDefaults = {
    instances = [ ];
    backends = [ ];
    balancing = null;
    keepalive = null;
    websockets = null;
    extraConfig = "";
    priority = 1000;
  };

  # The packaged listener address (systemd/app@.socket: ListenStream=127.0.0.1:%i).
  packagedListenAddress = "127.0.0.1";

  balancingMethods = [ "round-robin" "least_conn" "ip_hash" ];
  modes = [ "fork" "cluster" ];
  todosStores = [ "sqlite" "redis" ];

  # Fill in every default; idempotent.
  normalize = cfg:
    let
      c = defaults // cfg;
      nginx = defaults.nginx // (cfg.nginx or { });
    in
    c // {
      defaults = defaults.defaults // (cfg.defaults or { });
      redis = defaults.redis // (cfg.redis or { });
      instances = mapAttrs (_: i: instanceDefaults // i) c.instances;
      nginx = nginx // { routes = mapAttrs (_: r: routeDefaults // r) nginx.routes; };
    };

  # ---- instances --------------------------------------------------------------------------------
  # Names (ports as strings) of the enabled instances, in port order.
  instanceNames = cfg:
    let c = normalize cfg;
    in sort (a: b: fromDecimalOr a < fromDecimalOr b) (filter (n: c.instances.${n}.enable) (attrNames c.instances));
  fromDecimalOr = n: if isPortName n then fromDecimal n else 0;

  # An instance with the global defaults applied.
  resolveInstance = cfg: name:
    let
      c = normalize cfg;
      i = c.instances.${name};
    in
    i // {
      inherit name;
      port = fromDecimalOr name;
      mode = pick i.mode c.defaults.mode;
      workers = pick i.workers c.defaults.workers;
      threads = pick i.threads c.defaults.threads;
      settings = c.settings // i.settings;
      environment = c.environment // i.environment;
      extraArgs = c.extraArgs ++ i.extraArgs;
    };

  # ---- shared state -------------------------------------------------------------------------------
  # More than one process on this host serves chat clients: several instances, or a cluster
  # (each worker is a process). Chat rooms then need Redis pub/sub to reach every client.
  multiProcess = cfg:
    let names = instanceNames cfg;
    in length names > 1 || builtins.any (n: (resolveInstance cfg n).mode == "cluster") names;

  # Whether this host runs its own Redis (services.redis.servers.app). redis.enable = null (the
  # default) decides by need: no services.app.redisUrl elsewhere, and either the todos live in
  # Redis or chat has more than one process to reach. true/false force it.
  localRedis = cfg:
    let c = normalize cfg;
    in
    if c.redis.enable != null then c.redis.enable
    else c.enable && c.redisUrl == null && (c.todosStore == "redis" || multiProcess cfg);

  # The redis URL the instances get (null: none). The local Redis is reached over TCP on
  # loopback: its unix socket is in /run/redis-app (mode 0750, group redis-app), which the
  # instances' DynamicUser with PrivateUsers= cannot enter.
  redisUrl = cfg:
    let c = normalize cfg;
    in
    if c.redisUrl != null then c.redisUrl
    else if localRedis cfg then "redis://127.0.0.1:${toString c.redis.port}"
    else null;

  # Proxies whose X-Forwarded-For the app believes: the local nginx by default.
  trustedProxies = cfg:
    let c = normalize cfg;
    in
    if c.trustedProxies != null then c.trustedProxies
    else if c.nginx.enable then [ "127.0.0.1/32" "::1/128" ]
    else [ ];

  # Keys of `settings` that have their own option (or are set by the unit).
  reservedSettings = {
    port = "the instance's attribute name (services.app.instances.\"PORT\")";
    instance = "the unit (APP_INSTANCE=%i)";
    mode = "services.app.instances.<port>.mode or services.app.defaults.mode";
    workers = "services.app.instances.<port>.workers or services.app.defaults.workers";
    threads = "services.app.instances.<port>.threads or services.app.defaults.threads";
    redis-url = "services.app.redisUrl (or services.app.redis.enable)";
    todos-store = "services.app.todosStore";
    # Every instance must open the same SQLite file: the unit's StateDirectory=app
    # ($STATE_DIRECTORY, /var/lib/app), the only directory it may write to.
    data-dir = "the unit's StateDirectory=app (/var/lib/app, shared by every instance; the only place the unit may write)";
    trusted-proxies = "services.app.trustedProxies";
  };

  # A flag name of the binary (`drain-timeout`) -> its environment variable (APP_DRAIN_TIMEOUT).
  settingEnvName = key: "APP_" + toUpper (replaceStrings [ "-" "." ] [ "_" "_" ] key);
  settingValue = v:
    if isBool v then (if v then "true" else "false")
    else if isList v then concatStringsSep "," (map settingValue v)
    else toString v;
  settingsToEnv = settings:
    listToAttrs (map (k: { name = settingEnvName k; value = settingValue settings.${k}; })
      (filter (k: settings.${k} != null) (attrNames settings)));

  # The environment of one instance: the content of /etc/app/PORT.env.
  instanceEnv = cfg: name:
    let
      i = resolveInstance cfg name;
      url = redisUrl cfg;
      proxies = trustedProxies cfg;
    in
    {
      APP_MODE = i.mode;
      RUST_LOG = (normalize cfg).logLevel;
    }
    // optionalAttrs (i.workers != null) { APP_WORKERS = toString i.workers; }
    // optionalAttrs (i.threads != null) { APP_THREADS = toString i.threads; }
    // optionalAttrs (proxies != [ ]) { APP_TRUSTED_PROXIES = concatStringsSep "," proxies; }
    // optionalAttrs (url != null) { APP_REDIS_URL = url; }
    // { APP_TODOS_STORE = (normalize cfg).todosStore; }
    // settingsToEnv i.settings
    // i.environment;

  # systemd EnvironmentFile= syntax: KEY="value", with \ " ` $ escaped inside the quotes.
  quoteEnvValue = v: "\"" + replaceStrings [ "\\" "\"" "`" "$" ] [ "\\\\" "\\\"" "\\`" "\\$" ] v + "\"";
  renderEnv = env: concatStringsSep "" (map (k: "${k}=${quoteEnvValue (toString env.${k})}\n") (sortedNames env));

  envFileText = cfg: name:
    "# Generated by the NixOS module services.app for app@${name}.service\n"
    + renderEnv (instanceEnv cfg name);

  # environment.etc entries: /etc/app/PORT.env, read by the unit's EnvironmentFile=-/etc/app/%i.env.
  etcFiles = cfg: listToAttrs (map
    (n: {
      name = "app/${n}.env";
      value.text = envFileText cfg n;
    })
    (instanceNames cfg));

  # systemd ExecStart= quoting of one argument.
  quoteExecArg = a: "\"" + replaceStrings [ "\\" "\"" "%" "$" ] [ "\\\\" "\\\"" "%%" "$$" ] a + "\"";

  # ---- units ------------------------------------------------------------------------------------
  unitName = name: "app@${name}";

  formatListen = addr: port:
    if hasInfix ":" addr && match "\\[.*]" addr == null
    then "[${addr}]:${toString port}"
    else "${addr}:${toString port}";

  # The address nginx (on the same host) connects to for an instance.
  connectAddress = addr:
    if addr == "0.0.0.0" || addr == "" then "127.0.0.1"
    else if addr == "::" || addr == "[::]" then "[::1]"
    else if hasInfix ":" addr && match "\\[.*]" addr == null then "[${addr}]"
    else addr;

  # systemd.sockets: drop-ins for the packaged app@.socket template. The instance only needs to
  # be wanted (NixOS ignores a packaged [Install] section); the listen address is overridden only
  # when it differs from the packaged 127.0.0.1.
  sockets = cfg:
    let c = normalize cfg;
    in listToAttrs (map
      (n: {
        name = unitName n;
        value = {
          overrideStrategy = "asDropin";
          wantedBy = [ "sockets.target" ];
        } // optionalAttrs (c.listenAddress != packagedListenAddress) {
          description = "app listener on ${formatListen c.listenAddress n}";
          socketConfig.ListenStream = [ "" (formatListen c.listenAddress n) ];
        };
      })
      (instanceNames cfg));

  # systemd.services: drop-ins for the packaged app@.service template.
  services = cfg:
    let
      c = normalize cfg;
      svc = n:
        let
          i = resolveInstance cfg n;
          redisUnit = optional (localRedis cfg) "redis-app.service";
        in
        {
          overrideStrategy = "asDropin";
          # A lazy instance starts on its socket's first connection; an eager one with app.target.
          wantedBy = optional (!i.lazy) "app.target";
          # A switch restarts the service in one step and leaves its socket open, so connections
          # wait in the backlog instead of being refused.
          stopIfChanged = false;
          # /etc/app/PORT.env is read at start: restart when it changes.
          restartTriggers = [ (hashString "sha256" (envFileText cfg n)) ];
          after = redisUnit;
          wants = redisUnit;
        } // optionalAttrs (c.environmentFiles != [ ] || i.extraArgs != [ ]) {
          serviceConfig =
            optionalAttrs (c.environmentFiles != [ ]) { EnvironmentFile = map toString c.environmentFiles; }
            // optionalAttrs (i.extraArgs != [ ]) {
              # Replaces the packaged command line: empty assignment first, then the new one.
              ExecStart = [ "" (concatStringsSep " " ([ "${c.package}/bin/app" ] ++ map quoteExecArg i.extraArgs)) ];
            };
        };
    in
    listToAttrs (map (n: { name = unitName n; value = svc n; }) (instanceNames cfg));

  # systemd.targets.app: the packaged app.target, wanted at boot.
  target = {
    overrideStrategy = "asDropin";
    wantedBy = [ "multi-user.target" ];
  };

  # ---- nginx ------------------------------------------------------------------------------------
  # Upstream name of a route: "/" -> app_root, "/api/randoms" -> app_api_randoms.
  upstreamName = path:
    let
      parts = filter (s: isString s && s != "") (builtins.split "[^A-Za-z0-9]+" path);
    in
    "app_" + (if parts == [ ] then "root" else concatStringsSep "_" parts);

  routeSettings = cfg: path:
    let
      c = normalize cfg;
      r = c.nginx.routes.${path};
    in
    r // {
      inherit path;
      upstream = upstreamName path;
      balancing = pick r.balancing c.nginx.balancing;
      keepalive = pick r.keepalive c.nginx.keepalive;
      websockets = pick r.websockets c.nginx.websockets;
      instances = map portKey r.instances;
    };

  routePaths = cfg: sortedNames (normalize cfg).nginx.routes;

  # The servers of a route's upstream: local instances, then remote backends.
  upstreamServers = cfg: path:
    let
      c = normalize cfg;
      r = routeSettings cfg path;
      params = {
        max_fails = c.nginx.maxFails;
        fail_timeout = c.nginx.failTimeout;
      };
    in
    listToAttrs (map (s: { name = s; value = params; })
      (map (n: formatListen (connectAddress c.listenAddress) n) r.instances ++ r.backends));

  balancingDirective = m: {
    "round-robin" = "";
    "least_conn" = "least_conn;\n";
    "ip_hash" = "ip_hash;\n";
  }.${m};

  # services.nginx.upstreams. The balancing method must come before `keepalive`.
  upstreams = cfg: listToAttrs (map
    (p:
      let r = routeSettings cfg p;
      in {
        name = r.upstream;
        value = {
          servers = upstreamServers cfg p;
          extraConfig =
            "zone ${r.upstream} 64k;\n"
            + balancingDirective r.balancing
            + (if r.keepalive > 0 then "keepalive ${toString r.keepalive};\n" else "");
        };
      })
    (routePaths cfg));

  # The `map` that gives $app_connection: "upgrade" for WebSocket requests, "" otherwise (an
  # empty Connection header keeps upstream keepalive connections open).
  httpConfig = cfg:
    let anyWebsockets = builtins.any (p: (routeSettings cfg p).websockets) (routePaths cfg);
    in
    if (normalize cfg).nginx.enable && anyWebsockets then ''
      map $http_upgrade $app_connection {
        default upgrade;
        "" "";
      }
    '' else "";

  locationConfig = cfg: path:
    let
      c = normalize cfg;
      r = routeSettings cfg path;
    in
    "proxy_http_version 1.1;\n"
    + (if r.websockets then ''
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $app_connection;
    '' else ''
      proxy_set_header Connection "";
    '')
    + "proxy_connect_timeout ${c.nginx.connectTimeout};\n"
    + "proxy_read_timeout ${c.nginx.readTimeout};\n"
    + r.extraConfig;

  # services.nginx.virtualHosts.<virtualHost>.locations. recommendedProxySettings adds Host and
  # X-Forwarded-* (the location sets its own proxy_set_header, so none is inherited).
  locations = cfg: listToAttrs (map
    (p:
      let r = routeSettings cfg p;
      in {
        name = p;
        value = {
          proxyPass = "http://${r.upstream}";
          recommendedProxySettings = true;
          inherit (r) priority;
          extraConfig = locationConfig cfg p;
        };
      })
    (routePaths cfg));

  virtualHost = cfg:
    let c = normalize cfg;
    in
    { locations = locations cfg; }
    // optionalAttrs (c.nginx.port != null) {
      listen = map (addr: { inherit addr; inherit (c.nginx) port; }) c.nginx.listenAddresses;
    };

  # Every TCP port nginx listens on, from the evaluated services.nginx (enable,
  # defaultHTTPListenPort, defaultSSLListenPort, virtualHosts.*.{listen,onlySSL,addSSL,forceSSL}).
  nginxListenPorts = nginx:
    let
      http = nginx.defaultHTTPListenPort or 80;
      https = nginx.defaultSSLListenPort or 443;
      vhostPorts = v:
        let
          onlySSL = (v.onlySSL or false) || (v.enableSSL or false);
          hasSSL = onlySSL || (v.addSSL or false) || (v.forceSSL or false);
          listenPort = l: if (l.port or null) != null then l.port else if (l.ssl or false) then https else http;
        in
        if (v.listen or [ ]) != [ ] then map listenPort v.listen
        else optional (!onlySSL) http ++ optional hasSSL https;
    in
    if nginx.enable or false
    then unique (concatMap vhostPorts (attrValues (nginx.virtualHosts or { })))
    else [ ];

  # networking.firewall.allowedTCPPorts
  firewallPorts = cfg:
    let
      c = normalize cfg;
      loopback = elem c.listenAddress [ "127.0.0.1" "::1" "[::1]" "localhost" ];
    in
    if !c.openFirewall then [ ]
    else
      optional c.nginx.enable (if c.nginx.port != null then c.nginx.port else 80)
      ++ (if loopback then [ ] else map fromDecimal (filter isPortName (instanceNames cfg)));

  # services.redis.servers.app. With the todos in it, every write is fsynced before Redis
  # answers (appendfsync always), so a 201 means durable as with SQLite; chat alone (pub/sub)
  # keeps nothing and needs no persistence settings.
  redisServer = cfg:
    let c = normalize cfg;
    in
    {
      enable = true;
      inherit (c.redis) port;
      bind = "127.0.0.1";
    } // optionalAttrs (c.todosStore == "redis") {
      appendOnly = true;
      appendFsync = "always";
    };

  # Warnings (not errors): a configuration that works, but not as one may expect.
  warnings = cfg:
    let c = normalize cfg;
    in
    optional (c.enable && redisUrl cfg == null && multiProcess cfg)
      "services.app: chat rooms stay inside one process (instances ${showList (instanceNames cfg)}${if builtins.any (n: (resolveInstance cfg n).mode == "cluster") (instanceNames cfg) then ", cluster workers" else ""}), because services.app.redis.enable is false and services.app.redisUrl is null: a message reaches only the clients of the process it was sent to. Set services.app.redis.enable = null; (a local Redis), or services.app.redisUrl.";

  # ---- assertions -------------------------------------------------------------------------------
  # `nginxPorts`: the ports nginx listens on (nginxListenPorts of the evaluated services.nginx).
  assertions = cfg: { nginxPorts ? [ ] }:
    let
      c = normalize cfg;
      names = instanceNames cfg;
      portNames = filter isPortName names;
      instance = n: resolveInstance cfg n;
      inst = n: ''services.app.instances."${n}"'';
      route = p: ''services.app.nginx.routes."${p}"'';
      check = assertion: message: { inherit assertion message; };
      upstreamNames = map upstreamName (routePaths cfg);

      perInstance = n:
        let i = instance n;
        in
        [
          (check (isPortName n) "${inst n}: an instance is named by its TCP port, a number from 1 to 65535 without leading zeros (for example services.app.instances.\"8082\" = { };). Rename it.")
          (check (i.workers == null || i.workers >= 1) "${inst n}.workers is ${toString i.workers}: an instance needs at least 1 worker. Set ${inst n}.workers (or services.app.defaults.workers) to 1 or more, or to null for one per CPU.")
          (check (i.threads == null || i.threads >= 1) "${inst n}.threads is ${toString i.threads}: set it to 1 or more, or to null for the binary's default.")
          (check (elem i.mode modes) "${inst n}.mode is ${show i.mode}: use \"fork\" or \"cluster\".")
          (check (!(elem (fromDecimalOr n) nginxPorts)) "${inst n}: port ${n} is also a port nginx listens on (services.nginx virtual hosts). Give the instance another port, or move nginx with services.app.nginx.port.")
          (check (!(localRedis cfg && fromDecimalOr n == c.redis.port)) "${inst n}: port ${n} is also services.app.redis.port. Give one of them another port.")
        ]
        ++ map
          (k: check ((i.settings.${k} or null) == null) "${inst n}: the setting ${show k} is set through ${reservedSettings.${k}}, not through settings. Remove it from services.app.settings / ${inst n}.settings.")
          (attrNames reservedSettings)
        ++ map
          (k: check (!(i.environment ? ${settingEnvName k})) "${inst n}: the environment variable ${settingEnvName k} is set through ${reservedSettings.${k}}, not through environment. Remove it from services.app.environment / ${inst n}.environment.")
          (attrNames reservedSettings)
        ++ map
          (k: check (match "[A-Za-z_][A-Za-z0-9_]*" k != null) "${inst n}: environment variable name ${show k} is not valid; use letters, digits and _.")
          (attrNames (instanceEnv cfg n))
        ++ map
          (k: check (!(hasInfix "\n" (toString (instanceEnv cfg n).${k}))) "${inst n}: the value of ${k} contains a newline, which an environment file cannot hold.")
          (attrNames (instanceEnv cfg n));

      perRoute = p:
        let
          r = routeSettings cfg p;
          unknown = filter (x: !(elem x names)) r.instances;
          badBackends = filter (b: match "([^] :/[]+|\\[[0-9A-Fa-f:.]+]):[0-9]+" b == null && match "unix:/.*" b == null) r.backends;
          servers = map (n: formatListen (connectAddress c.listenAddress) n) r.instances ++ r.backends;
        in
        [
          (check (unknown == [ ]) "${route p}.instances names ${showList unknown}, which ${if length unknown == 1 then "is" else "are"} not in services.app.instances on this host (known: ${if names == [ ] then "none" else showList names}). Add services.app.instances.\"${builtins.head (unknown ++ [ "" ])}\" = { };, or list a remote address in ${route p}.backends.")
          (check (r.instances != [ ] || r.backends != [ ]) "${route p} has neither instances nor backends. Set ${route p}.instances = [ 8082 ]; (local instances) or ${route p}.backends = [ \"host:8082\" ]; (other hosts).")
          (check (badBackends == [ ]) "${route p}.backends: ${showList badBackends} ${if length badBackends == 1 then "is" else "are"} not HOST:PORT (for example \"10.0.0.2:8082\" or \"backend1:8082\").")
          (check (duplicates servers == [ ]) "${route p} lists ${showList (duplicates servers)} more than once. Remove the duplicate port.")
          (check (count r.upstream upstreamNames == 1) "${route p}: its upstream name ${r.upstream} is also the name of another route's upstream (paths that differ only in punctuation). Change one of the paths.")
        ];
    in
    optional c.enable (check (elem c.todosStore todosStores) "services.app.todosStore is ${show c.todosStore}: use \"sqlite\" (one host) or \"redis\" (every host).")
    ++ optional (c.enable && c.todosStore == "redis") (check (redisUrl cfg != null) "services.app.todosStore = \"redis\" needs a Redis, and services.app.redis.enable is false with services.app.redisUrl null. Set services.app.redisUrl = \"redis://HOST:6379\"; (the Redis every host shares), or services.app.redis.enable = true; (a local one, for a single host).")
    ++ optional (c.enable && c.nginx.enable) (check (c.nginx.routes != { }) "services.app.nginx.enable is set but services.app.nginx.routes is empty. Add a route, for example services.app.nginx.routes.\"/\".instances = [ 8080 ];")
    ++ concatMap perInstance names
    ++ (if c.nginx.enable then concatMap perRoute (routePaths cfg) else [ ])
    ++ optional (c.nginx.enable && c.nginx.port != null) (check (!(elem c.nginx.port (map fromDecimalOr portNames))) "services.app.nginx.port ${toString c.nginx.port} is also an instance's port. Choose another port for nginx or for the instance.");

  # The messages of the assertions that fail (what NixOS would print).
  failedAssertions = cfg: args: map (a: a.message) (filter (a: !a.assertion) (assertions cfg args));

  # ---- package ----------------------------------------------------------------------------------
  # What the package changes in the unit files of systemd/ when it installs them under
  # $out/lib/systemd/system: FHS paths that do not exist on NixOS.
  unitSubstitutions = { app, kill }: [
    { file = "app@.service"; from = "/usr/local/bin/app"; to = app; }
    { file = "app@.service"; from = "/bin/kill"; to = kill; }
    { file = "app-reload.service"; from = "/usr/local/bin/app"; to = app; }
  ];

  # Shell commands (for postInstall) that apply unitSubstitutions in directory `dir`; each
  # replacement must match (substituteInPlace --replace-fail).
  substituteCommands = dir: subs: concatStringsSep "\n" (map
    (s: "substituteInPlace ${dir}/${s.file} --replace-fail ${quoteShell s.from} ${quoteShell s.to}")
    subs);
  quoteShell = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'";
}
