# Shared state across instances on one host: two instances (8082, 8085), the local Redis the
# module starts by itself (two instances: chat needs it; redis.enable is left at its default),
# and nginx. Proves: both instances get APP_REDIS_URL and are ordered after redis-app.service;
# a chat message sent to 8082 reaches a client on 8085 and one connected through nginx (and each
# of theirs the others); the real socket.io-client through nginx's generated /socket.io/ (sticky
# over both instances) with each transport, and on each instance directly, chats with them and
# with a /ws client; a todo written through 8082 is read through 8085 (one SQLite file in the
# shared state directory), and is still there after both restart.
{ pkgs, self }:
let
  # The system suite's chat clients (Python's standard library only), `across` mode: bounded by
  # their own --timeout.
  chatClient = pkgs.writeScript "chat-client" ("#!${pkgs.python3}/bin/python3\n" + builtins.readFile ../../tests/system/chat.py);
  # socket.io-client as tests/socketio/package-lock.json pins it (fetched by Nix from the
  # lockfile's URLs and integrity hashes, so the VM needs no network), its driver, and the
  # system suite's check that steers it (tests/system/socketio.py, with chat.py for /ws).
  socketioNodeModules = pkgs.importNpmLock.buildNodeModules { npmRoot = ../../tests/socketio; inherit (pkgs) nodejs; };
  socketioFiles = pkgs.runCommand "socketio-check-files" { } ''
    mkdir $out
    cp ${../../tests/system/socketio.py} $out/socketio.py
    cp ${../../tests/system/chat.py} $out/chat.py
    cp ${../../tests/socketio/driver.js} $out/driver.js
    ln -s ${socketioNodeModules}/node_modules $out/node_modules
  '';
  socketioCheck = pkgs.writeShellScript "socketio-check" ''
    PATH=${pkgs.nodejs}/bin:$PATH exec ${pkgs.python3}/bin/python3 ${socketioFiles}/socketio.py --driver ${socketioFiles}/driver.js "$@"
  '';
in
pkgs.testers.runNixOSTest {
  name = "app-chat-across-instances";

  nodes.machine = { ... }: {
    imports = [ self.nixosModules.default ];
    services.app = {
      enable = true;
      instances = {
        "8082" = { };
        "8085" = { };
      };
      nginx = {
        enable = true;
        routes."/".instances = [ 8082 8085 ];
      };
    };
  };

  testScript = ''
    import json

    ports = [8082, 8085]

    machine.wait_for_unit("multi-user.target")
    machine.wait_for_unit("redis-app.service")
    machine.wait_for_unit("nginx.service")

    with subtest("the module runs a local Redis and gives every instance its address"):
        machine.succeed("redis-cli -p 6379 ping | grep -qx PONG")
        # Read, then checked here: machine.fail("ss ... | grep -v ...") would also pass if ss failed.
        listening = machine.succeed("ss -Htln 'sport = :6379'").split("\n")
        listening = [line for line in listening if line.strip()]
        assert listening and all("127.0.0.1:6379" in line for line in listening), listening
        for port in ports:
            machine.succeed(f"grep -qx 'APP_REDIS_URL=\"redis://127.0.0.1:6379\"' /etc/app/{port}.env")
            machine.succeed(f"grep -qx 'APP_TODOS_STORE=\"sqlite\"' /etc/app/{port}.env")
            for prop in ["After", "Wants"]:
                deps = machine.succeed(f"systemctl show -P {prop} app@{port}.service")
                assert "redis-app.service" in deps.split(), f"app@{port}: {prop}={deps}"

    with subtest("both instances start (READY=1 once subscribed) and subscribe to the chat channels"):
        # Type=notify: systemctl start returns after READY=1, which waits for the subscription.
        machine.succeed("systemctl start app@8082.service app@8085.service", timeout=60)
        machine.wait_until_succeeds(
            "test $(redis-cli -p 6379 client list | grep -c ' psub=1 ') -eq 2", timeout=30
        )

    with subtest("a chat message crosses instances: 8082, 8085 and nginx, each to the others"):
        out = machine.succeed(
            "timeout 90 ${chatClient} across --timeout 60 lobby"
            + " alice=ws://127.0.0.1:8082/ws"
            + " bob=ws://127.0.0.1:8085/ws"
            + " carol=ws://127.0.0.1/ws",
            timeout=120,
        )
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert lines[-1].get("result") == "ok", out
        checks = {(c["sender"], c["receiver"]) for c in lines if c.get("check") == "message"}
        assert ("alice", "bob") in checks and ("bob", "alice") in checks, checks
        assert len(checks) == 9, checks

    with subtest("socket.io-client through nginx (each transport) and on both instances, with /ws"):
        import shlex

        def client(name, url, transport, **opts):
            return "--client " + shlex.quote(json.dumps(
                {"name": name, "url": url, "transport": transport, "opts": opts}))

        args = " ".join([
            client("sio-ws", "http://127.0.0.1", "websocket", transports=["websocket"]),
            client("sio-polling", "http://127.0.0.1", "polling", transports=["polling"]),
            client("sio-upgrading", "http://127.0.0.1", "websocket"),
            client("sio-8082", "http://127.0.0.1:8082", "websocket"),
            client("sio-8085", "http://127.0.0.1:8085", "polling", transports=["polling"]),
            "--ws " + shlex.quote("ws://127.0.0.1/ws?room=sio&name=ws-nginx"),
        ])
        out = machine.succeed(
            f"timeout 120 ${socketioCheck} --room sio --steps join,exchange,exchange --timeout 30 {args}",
            timeout=150,
        )
        result = json.loads(out.strip().splitlines()[-1])
        clients = result["clients"]
        # Started on polling, moved onto a WebSocket (the upgrade may finish before the connect).
        assert clients["sio-upgrading"]["upgrades"] == ["websocket"], clients
        assert all(not c["disconnects"] for c in clients.values()), clients
        # Each polling request of the client went to one instance (nginx's access log).
        log = machine.succeed("grep '/socket.io/' /var/log/nginx/access.log")
        answered = {line.split("upstream=")[1].split()[0].rstrip(",") for line in log.splitlines() if "transport=polling" in line}
        assert len(answered) == 1, answered

    with subtest("a todo written through 8082 is read through 8085"):
        body = json.dumps({"title": "written on 8082"})
        created = json.loads(machine.succeed(
            "curl -sf -X POST -H 'Content-Type: application/json'"
            + f" -d '{body}' http://127.0.0.1:8082/v1/todos"
        ))
        todo_id = created["id"]
        got = json.loads(machine.succeed(f"curl -sf http://127.0.0.1:8085/v1/todos/{todo_id}"))
        assert got["title"] == "written on 8082", got
        listed = json.loads(machine.succeed("curl -sf 'http://127.0.0.1:8085/v1/todos?limit=100'"))
        assert todo_id in [t["id"] for t in listed["items"]], listed
        # One file for both: the unit's StateDirectory=app, shared by the instances' one user.
        machine.succeed("test -s /var/lib/app/todos.sqlite3")

    with subtest("the todo survives a restart of both instances, read through nginx"):
        machine.succeed("systemctl restart app@8082.service app@8085.service", timeout=60)
        for _ in range(4):
            got = json.loads(machine.succeed(f"curl -sf http://127.0.0.1/v1/todos/{todo_id}"))
            assert got["title"] == "written on 8082", got
  '';
}
