# What nixos/package.nix hands to buildRustPackage, read without nixpkgs: every argument of
# package.nix is a stand-in that records only its name (buildRustPackage returns its
# attributes), so only these declarations are evaluated. Used by tests/nix/sandbox-check.sh
# (the check phase, on the source files package.nix keeps) and tests/nix/units-test.nix (which
# units postInstall installs):
#   nix-instantiate --eval --strict --json tests/nix/package-recipe.nix --argstr files "$(git ls-files | jq -Rsc 'split("\n")')"
{ files ? "[]" }:
let
  app = import ../../nixos/lib.nix;
  package = import ../../nixos/package.nix;
  stub = name: { pname = name; outPath = "/nix/store/00000000000000000000000000000000-${name}"; };
  args = builtins.mapAttrs
    (name: _: if name == "rustPlatform" then { buildRustPackage = attrs: attrs; } else stub name)
    (builtins.functionArgs package);
  attrs = package args;

  # lib.cleanSourceWith descends only into the directories the filter keeps.
  parents = f:
    let parts = builtins.filter builtins.isString (builtins.split "/" f);
    in builtins.genList (i: builtins.concatStringsSep "/" (builtins.genList (j: builtins.elemAt parts j) (i + 1))) (builtins.length parts - 1);
  kept = f: builtins.all (d: app.inSource d "directory") (parents f) && app.inSource f "regular";
in
{
  doCheck = attrs.doCheck or true;
  cargoTestFlags = attrs.cargoTestFlags or [ ];
  checkFlags = attrs.checkFlags or [ ];
  # nixpkgs attribute names of the packages whose programs the check phase may run.
  nativeCheckInputs = map (p: p.pname) (attrs.nativeCheckInputs or [ ]);
  postInstall = attrs.postInstall or "";
  # Of `files` (a JSON list of paths relative to the repository), those in the package's source.
  sourceFiles = builtins.filter kept (builtins.fromJSON files);
}
