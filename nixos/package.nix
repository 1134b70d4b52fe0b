# The app binary, its systemd units (systemd/ installed under lib/systemd/system, with the FHS
# paths in them replaced by store paths: see unitSubstitutions in ./lib.nix) and its nginx policy
# (nginx/ under share/app/nginx: the NixOS module includes the snippets from there).
{ lib, rustPlatform, coreutils, iproute2, systemd }:

let
  app = import ./lib.nix;
  cargo = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  unitDir = "$out/lib/systemd/system";
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

  # The check phase runs in the build sandbox: no network but loopback, no HOME, and no
  # program but stdenv's and these: systemd-socket-activate (tests/activation.rs starts the
  # binary under it) and ss (tests/limits.rs reads the kernel's accept queue).
  nativeCheckInputs = [ iproute2 systemd ];
  # Every test target runs there except the tests that start a server the sandbox does not
  # have. Those name it, and are skipped by that word: redis-server (tests/todos.rs,
  # tests/chat.rs), nginx and Chromium (tests/browser.rs). They run in the test command
  # (tests/run.sh) and in the VM tests. tests/nix/sandbox-check.sh runs this check phase in a
  # simulated build sandbox, reading these declarations from this file.
  checkFlags = [ "--skip=redis" "--skip=nginx" "--skip=browser" ];

  postInstall = ''
    mkdir -p ${unitDir}
    ${builtins.concatStringsSep "\n" (map (f: "install -m 0644 systemd/${f} ${unitDir}/") unitFiles)}
    mkdir -p $out/share/app
    cp -r nginx $out/share/app/nginx
    ${app.substituteCommands unitDir (app.unitSubstitutions {
      app = "${placeholder "out"}/bin/app";
      kill = "${coreutils}/bin/kill";
    })}
  '';

  meta = {
    description = cargo.package.description or "app";
    license = lib.licenses.mit;
    mainProgram = "app";
    platforms = lib.platforms.linux;
  };
}
