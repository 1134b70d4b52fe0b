# The app binary, its systemd units (systemd/ installed under lib/systemd/system, with the FHS
# paths in them replaced by store paths: see unitSubstitutions in ./lib.nix) and its nginx policy
# (nginx/ under share/app/nginx: the NixOS module includes the snippets from there).
{ lib, rustPlatform, coreutils, systemd }:

let
  app = import ./lib.nix;
  cargo = builtins.fromTOML (builtins.readFile ../Cargo.toml);
  unitDir = "$out/lib/systemd/system";
in
rustPlatform.buildRustPackage {
  pname = cargo.package.name;
  inherit (cargo.package) version;

  # The crate and the unit files, nothing else (a change in docs/ or nixos/ does not rebuild).
  src = lib.cleanSourceWith {
    name = "app-source";
    src = ../.;
    filter = path: type:
      let
        rel = lib.removePrefix (toString ../. + "/") (toString path);
        top = builtins.head (lib.splitString "/" rel);
      in
      builtins.elem rel [ "Cargo.toml" "Cargo.lock" "build.rs" ]
      || builtins.elem top [ "src" "systemd" "benches" "nginx" ]
      || (top == "tests" && (type == "directory" || lib.hasSuffix ".rs" rel));
  };

  cargoLock.lockFile = ../Cargo.lock;

  # tests/activation.rs starts the binary under systemd-socket-activate.
  nativeCheckInputs = [ systemd ];

  postInstall = ''
    mkdir -p ${unitDir}
    install -m 0644 systemd/* ${unitDir}/
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
