# The app binary, its systemd units (systemd/ installed under lib/systemd/system, with the FHS
# paths in them replaced by store paths: see unitSubstitutions in ./lib.nix) and its nginx policy
# (nginx/ under share/app/nginx: the NixOS module includes the snippets from there).
{ lib, rustPlatform, coreutils, systemd }:

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

  # tests/activation.rs starts the binary under systemd-socket-activate.
  nativeCheckInputs = [ systemd ];

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
