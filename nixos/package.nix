# The app binary, its systemd units (systemd/ installed under lib/systemd/system, with the FHS
# paths in them replaced by store paths: see unitSubstitutions in ./lib.nix), its nginx policy
# (nginx/ under share/app/nginx: the NixOS module includes the snippets from there), the manual
# page, the shell completions and the operations guide the units' Documentation= names.
{ lib, rustPlatform, installShellFiles, fish, iproute2, man-db, redis, systemd, util-linux, zsh }:

let
  app = import ./lib.nix;
  cargo = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  unitDir = "$out/lib/systemd/system";
  docDir = "$out/share/doc/app";
  unitFiles = app.packagedUnits (builtins.attrNames (builtins.readDir ../systemd));
in
rustPlatform.buildRustPackage {
  pname = cargo.package.name;
  inherit (cargo.package) version;

  # The crate, the unit files and the nginx policy, nothing else (app.inSource).
  src = lib.cleanSourceWith {
    name = "app-source";
    src = ../.;
    filter = path: type: app.inSource (lib.removePrefix (toString ../. + "/") (toString path)) type;
  };

  cargoLock.lockFile = ../Cargo.lock;

  # The check phase runs in the build sandbox: no network but loopback, no HOME, no privileges,
  # and no program but stdenv's and these: systemd-socket-activate (tests/activation.rs starts
  # the binary under it), ss (tests/limits.rs reads the kernel's accept queue), script and col
  # (util-linux: `app status --watch` on a terminal, man's formatting), zsh, fish and man
  # (tests/conventions.rs checks the completions and the manual page with them), redis-server
  # (the todo store, the chat fan-out, Redis frozen and killed under load).
  nativeCheckInputs = [ fish iproute2 man-db redis systemd util-linux zsh ];
  # Three kinds of test cannot run there, and say so in their name: the browser tests
  # (tests/browser.rs: Chromium through nginx), the one that moves Redis into a network
  # namespace of its own (tests/redis_loss.rs: creating one needs CAP_NET_ADMIN) and those that
  # drive npm packages (tests/socketio.rs: socket.io-client, which the sandbox cannot download).
  # They run in the test command (tests/run.sh), the first two also in the VM tests.
  # tests/nix/sandbox-check.sh runs this check phase in a simulated build sandbox, reading these
  # declarations from this file.
  checkFlags = [ "--skip=browser" "--skip=network_namespace" "--skip=npm" ];

  nativeBuildInputs = [ installShellFiles ];

  postInstall = ''
    mkdir -p ${unitDir}
    ${builtins.concatStringsSep "\n" (map (f: "install -m 0644 systemd/${f} ${unitDir}/") unitFiles)}
    install -D -m 0644 -t ${docDir} docs/operations.md
    ${app.substituteCommands unitDir (app.unitSubstitutions {
      app = "${placeholder "out"}/bin/app";
      doc = "${placeholder "out"}/share/doc/app";
      files = unitFiles;
    })}
    mkdir -p $out/share/app
    cp -r nginx $out/share/app/nginx
    # The manual page and the completions are made by the binary from its own flags.
    $out/bin/app man > app.1
    installManPage app.1
    installShellCompletion --cmd app \
      --bash <($out/bin/app completions bash) \
      --fish <($out/bin/app completions fish) \
      --zsh <($out/bin/app completions zsh)
  '';

  meta = {
    description = cargo.package.description or "app";
    license = lib.licenses.mit;
    mainProgram = "app";
    platforms = lib.platforms.linux;
  };
}
