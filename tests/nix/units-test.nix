# The unit files the package installs are the ones in systemd/ (the ones the system tests boot),
# changed only by nixos/lib.nix's unitSubstitutions, and they hold what the NixOS module relies
# on. Builtins only:
#   nix-instantiate --eval --strict --json tests/nix/units-test.nix
let
  app = import ../../nixos/lib.nix;
  inherit (builtins) attrNames readDir readFile filter foldl' replaceStrings split isString match
    length elem all concatStringsSep genList elemAt toJSON;

  dir = ../../systemd;
  entries = readDir dir;
  allFiles = filter (n: entries.${n} == "regular") (attrNames entries);
  # The ones the package installs (the others are for hosts that replace a binary in place).
  files = app.packagedUnits allFiles;
  recipe = import ./package-recipe.nix { };
  installLine = f: "install -m 0644 systemd/${f} $out/lib/systemd/system/";
  out = "/nix/store/00000000000000000000000000000000-app";
  subs = app.unitSubstitutions { app = "${out}/bin/app"; doc = "${out}/share/doc/app"; inherit files; };

  contains = app.hasInfix;
  # Absolute paths that are not in the store: an FHS path a unit would name on NixOS.
  fhsPaths = text: filter (p: p != null) (map (l: match "[^#]*[ =:](/(usr|bin|sbin|lib|opt)/[^ ]*).*" l) (lines text));
  lines = text: filter isString (split "\n" text);
  original = f: readFile (dir + "/${f}");
  installed = f: foldl' (t: s: if s.file == f then replaceStrings [ s.from ] [ s.to ] t else t) (original f) subs;
  keyLines = key: text: filter (l: match "${key}=.*" l != null) (lines text);
  execLines = keyLines "Exec[A-Za-z]*";
  # The program of an Exec line, without the value's special prefixes (-, @, :, +, !).
  program = l: elemAt (match "Exec[A-Za-z]*=[-@:+!]*([^ ]*).*" l) 0;
  storePath = p: p == "" || match "/nix/store/.*" p != null;

  changedLines = f:
    let
      a = lines (original f);
      b = lines (installed f);
    in
    filter (x: x != null) (genList (i: if elemAt a i == elemAt b i then null else elemAt a i) (length a));
  fromsOf = f: map (s: s.from) (filter (s: s.file == f) subs);

  checks = [
    {
      name = "postInstall installs the packaged units and no other file of systemd/";
      ok = all (f: contains (installLine f) recipe.postInstall == elem f files) allFiles;
      got = recipe.postInstall;
    }
    {
      name = "no installed unit names a path outside the store (/usr/..., /bin/...: NixOS has none)";
      ok = all (f: fhsPaths (installed f) == [ ]) files;
      got = map (f: fhsPaths (installed f)) files;
    }
    {
      name = "the units the module uses are in systemd/";
      ok = all (u: elem u files) [ "app@.service" "app@.socket" "app.target" ];
      got = files;
    }
    {
      name = "every substitution matches its file (--replace-fail)";
      ok = all (s: elem s.file files && contains s.from (original s.file)) subs;
      got = subs;
    }
    {
      name = "only the lines holding a substituted path change";
      ok = all (f: all (l: builtins.any (from: contains from l) (fromsOf f)) (changedLines f)) files;
      got = map changedLines files;
    }
    {
      name = "after substitution every Exec*= program is a store path";
      ok = all (f: all (l: storePath (program l)) (execLines (installed f))) files;
      got = map (f: map program (execLines (installed f))) files;
    }
    {
      name = "app@.service has exactly one ExecStart=, the packaged binary";
      ok = keyLines "ExecStart" (installed "app@.service") == [ "ExecStart=${out}/bin/app" ];
      got = keyLines "ExecStart" (installed "app@.service");
    }
    {
      name = "app@.socket listens on ${app.packagedListenAddress}:%i (the module overrides only other addresses)";
      ok = keyLines "ListenStream" (original "app@.socket") == [ "ListenStream=${app.packagedListenAddress}:%i" ];
      got = keyLines "ListenStream" (original "app@.socket");
    }
    {
      name = "app@.service reads /etc/app/%i.env (the module writes it)";
      ok = elem "EnvironmentFile=-/etc/app/%i.env" (lines (original "app@.service"));
      got = keyLines "EnvironmentFile" (original "app@.service");
    }
    {
      name = "app@.service: Type=notify, one shared DynamicUser (instances share StateDirectory)";
      ok = all (l: elem l (lines (original "app@.service"))) [ "Type=notify" "DynamicUser=yes" "User=app" "StateDirectory=app" ];
      got = map (k: keyLines k (original "app@.service")) [ "Type" "DynamicUser" "User" "StateDirectory" ];
    }
    {
      name = "app@.service is PartOf=app.target (the module's app.target wants the eager instances)";
      ok = elem "PartOf=app.target" (lines (original "app@.service"));
      got = keyLines "PartOf" (original "app@.service");
    }
  ];
  failures = filter (c: !c.ok) checks;
in
if failures == [ ]
then { passed = length checks; inherit files; }
else throw "systemd/ units vs the package and module:\n${concatStringsSep "\n" (map (c: "FAIL ${c.name}\n  got: ${toJSON c.got}") failures)}"
