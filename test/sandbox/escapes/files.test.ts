// Escape attempts on the file system: reading and writing outside the jail, climbing out of the
// chroot, and reaching another invocation's /tmp.
// How the attacks are written and run, and what the policy answers: ./attacks.ts.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { bodyJson, bodyText } from "../harness.js";
import {
  attack,
  currentIsolation,
  DB_MARKER,
  host,
  lit,
  observe,
  observeInSlot,
  outcome,
  py,
  RUNTIMES,
  run,
  useAttackedSandbox,
  waitForSlotFile,
} from "./attacks.js";

useAttackedSandbox();

describe("reading files outside the jail", () => {
  describe.each(RUNTIMES)("%s", (runtime) => {
    it("cannot read /etc/shadow", async () => {
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `return attempt(lambda: open("/etc/shadow").read())`,
          `return attempt(() => fs.readFileSync("/etc/shadow", "utf8"));`,
        ),
      );
      expect(outcome(seen)).toEqual({ ok: false, code: expect.toSatisfy((c: string) => ["ENOENT", "EACCES"].includes(c)) });
    });

    it("cannot read the gateway's database, by its host path or by climbing out of the jail", async () => {
      // The jail lives in DATA_DIR/jail/slots/<k>: the database is four levels above its root.
      const paths = [host.dbPath, "/../../../gateway.db", "../../../gateway.db", "/../../../../gateway.db"];
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `return {p: attempt(lambda p=p: open(p, "rb").read().decode("latin1")) for p in ${JSON.stringify(paths)}}`,
          `return Object.fromEntries(${JSON.stringify(paths)}.map((p) => [p, attempt(() => fs.readFileSync(p, "latin1"))]));`,
        ),
      );
      expect(fs.readFileSync(host.dbPath, "utf8")).toContain(DB_MARKER);
      expect(Object.keys(seen).sort()).toEqual([...paths].sort());
      for (const p of paths) expect(outcome(seen[p]), p).toEqual({ ok: false, code: "ENOENT" });
      expect(JSON.stringify(seen)).not.toContain(DB_MARKER);
    });

    it("cannot read the gateway's code or the host's home directory", async () => {
      const packageJson = fileURLToPath(new URL("../../../package.json", import.meta.url));
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `return {"code": attempt(lambda: open(${lit(packageJson)}).read()), "root": attempt(lambda: sorted(os.listdir("/root"))),
                   "bashrc": attempt(lambda: open("/root/.bashrc").read())}`,
          `return { code: attempt(() => fs.readFileSync(${lit(packageJson)}, "utf8")), root: attempt(() => fs.readdirSync("/root").sort()),
                    bashrc: attempt(() => fs.readFileSync("/root/.bashrc", "utf8")) };`,
        ),
      );
      expect(fs.existsSync(packageJson)).toBe(true);
      expect(outcome(seen.code)).toEqual({ ok: false, code: "ENOENT" });
      expect(outcome(seen.bashrc)).toEqual({ ok: false, code: "ENOENT" });
      // /root exists in the jail only when the Python stdlib lives below it (pyenv): then it
      // holds just that path, never the host's home directory.
      const jailRoot = path.join(host.jailBase, "root");
      if (fs.existsSync(jailRoot)) {
        expect(seen.root).toEqual({ ok: true, value: fs.readdirSync(jailRoot).sort() });
        expect(seen.root.value).not.toEqual(fs.readdirSync("/root").sort());
      } else {
        expect(outcome(seen.root)).toEqual({ ok: false, code: "ENOENT" });
      }
    });

    it("cannot read the host's TLS private keys through the /etc/ssl bind", async () => {
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `return {"list": attempt(lambda: os.listdir("/etc/ssl/private")),
                   "key": attempt(lambda: open("/etc/ssl/private/ssl-cert-snakeoil.key").read())}`,
          `return { list: attempt(() => fs.readdirSync("/etc/ssl/private")), key: attempt(() => fs.readFileSync("/etc/ssl/private/ssl-cert-snakeoil.key", "utf8")) };`,
        ),
      );
      for (const what of ["list", "key"]) {
        expect(outcome(seen[what]), what).toEqual({ ok: false, code: expect.toSatisfy((c: string) => ["ENOENT", "EACCES"].includes(c)) });
      }
    });

    it("finds no /proc: neither /proc/self/status nor /proc/1/environ", async () => {
      const seen = await observe(
        runtime,
        attack(
          runtime,
          `return {"status": attempt(lambda: open("/proc/self/status").read()), "environ": attempt(lambda: open("/proc/1/environ", "rb").read().decode("latin1")),
                   "root": sorted(os.listdir("/"))}`,
          `return { status: attempt(() => fs.readFileSync("/proc/self/status", "utf8")), environ: attempt(() => fs.readFileSync("/proc/1/environ", "latin1")),
                    root: fs.readdirSync("/").sort() };`,
        ),
      );
      expect(outcome(seen.status)).toEqual({ ok: false, code: "ENOENT" });
      expect(outcome(seen.environ)).toEqual({ ok: false, code: "ENOENT" });
      expect(seen.root).not.toContain("proc");
      expect(seen.root).not.toContain("sys");
    });
  });
});

describe("leaving the chroot", () => {
  const forbidden = ["work", "home", "proc", "sys", "var", "data", "jail", "slots", "base"];

  it.each(RUNTIMES)("%s: climbing `..` from / stays in the jail's root", async (runtime) => {
    const seen = await observe(
      runtime,
      attack(
        runtime,
        `
        for _ in range(64):
            os.chdir("..")
        return {"cwd": os.getcwd(), "here": sorted(os.listdir(".")), "root": sorted(os.listdir("/")),
                "up": sorted(os.listdir("/" + "../" * 32)), "tmp_up": sorted(os.listdir("/tmp/../../../.."))}
        `,
        `
        for (let i = 0; i < 64; i++) process.chdir("..");
        return { cwd: process.cwd(), here: fs.readdirSync(".").sort(), root: fs.readdirSync("/").sort(),
                 up: fs.readdirSync("/" + "../".repeat(32)).sort(), tmp_up: fs.readdirSync("/tmp/../../../..").sort() };
        `,
      ),
    );
    const base = fs.readdirSync(host.jailBase).sort();
    expect(seen.cwd).toBe("/");
    for (const listing of ["here", "root", "up", "tmp_up"]) {
      expect(seen[listing], listing).toEqual(base);
      for (const entry of forbidden) expect(seen[listing], listing).not.toContain(entry);
    }
  });

  it("python: a directory fd opened on / leads nowhere: chroot is refused, fchdir and openat `..` stay in the jail", async () => {
    // Node has no fchdir, openat or chroot API: this route needs Python (or native code).
    const seen = await observe(
      "python",
      py(`
        fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        out = {"chroot": attempt(os.chroot, "tmp")}
        os.chdir("/tmp")
        os.fchdir(fd)
        for _ in range(64):
            os.chdir("..")
        out["cwd"] = os.getcwd()
        out["fchdir"] = sorted(os.listdir("."))
        up = os.open("../../../../../../..", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd)
        out["openat"] = sorted(os.listdir(up))
        out["chroot_fd"] = attempt(os.chroot, ".")
        return out
      `),
    );
    const base = fs.readdirSync(host.jailBase).sort();
    expect(seen.chroot).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
    expect(seen.chroot_fd).toEqual({ ok: false, error: "PermissionError", errno: "EPERM" });
    expect(seen.cwd).toBe("/");
    expect(seen.fchdir).toEqual(base);
    expect(seen.openat).toEqual(base);
    for (const entry of forbidden) expect(seen.openat).not.toContain(entry);
  });
});

describe("writing outside /tmp", () => {
  it.each(RUNTIMES)("%s: cannot write /, /etc/passwd, /usr/share/zoneinfo or the Python stdlib; can write /tmp", async (runtime) => {
    const targets = {
      root: "/evil",
      passwd: "/etc/passwd",
      zoneinfo: "/usr/share/zoneinfo/evil",
      // The jail shows the standard library at a neutral path, /usr/lib/pythonX.Y.
      stdlib: `/usr/lib/${path.basename(host.pythonStdlib)}/evil_${runtime}.py`,
      dev: "/dev/evil",
    };
    const seen = await observe(
      runtime,
      attack(
        runtime,
        `
        targets = ${JSON.stringify(targets)}
        def write(p):
            with open(p, "a") as f:
                f.write("owned\\n")
        out = {name: attempt(write, p) for name, p in targets.items()}
        out["mkdir"] = attempt(os.mkdir, "/evil_dir")
        out["chmod"] = attempt(os.chmod, "/etc/passwd", 0o666)
        with open("/tmp/mine", "w") as f:
            f.write("mine")
        out["tmp"] = open("/tmp/mine").read()
        out["tmp_owner"] = os.stat("/tmp/mine").st_uid == os.getuid()
        return out
        `,
        `
        const targets = ${JSON.stringify(targets)};
        const out = Object.fromEntries(Object.entries(targets).map(([name, p]) => [name, attempt(() => fs.appendFileSync(p, "owned\\n"))]));
        out.mkdir = attempt(() => fs.mkdirSync("/evil_dir"));
        out.chmod = attempt(() => fs.chmodSync("/etc/passwd", 0o666));
        fs.writeFileSync("/tmp/mine", "mine");
        out.tmp = fs.readFileSync("/tmp/mine", "utf8");
        out.tmp_owner = fs.statSync("/tmp/mine").uid === process.getuid();
        return out;
        `,
      ),
    );
    for (const what of [...Object.keys(targets), "mkdir", "chmod"]) {
      expect(outcome(seen[what]), what).toEqual({
        ok: false,
        code: expect.toSatisfy((c: string) => ["EROFS", "EACCES", "EPERM"].includes(c)),
      });
    }
    expect(seen.tmp).toBe("mine");
    expect(seen.tmp_owner).toBe(true);
    expect(fs.existsSync(targets.stdlib)).toBe(false);
    expect(fs.existsSync(targets.zoneinfo)).toBe(false);
  });
});

describe("another invocation's /tmp", () => {
  it.each(RUNTIMES)("%s: an invocation that follows in the same slot finds /tmp empty", async (runtime) => {
    const writer = await observe(
      "python",
      py(`
        with open("/tmp/secret", "w") as f:
            f.write("the writer's secret")
        return {"uid": os.getuid(), "tmp": os.listdir("/tmp")}
      `),
    );
    expect(writer.tmp).toEqual(["secret"]);
    const reader = await observeInSlot(
      writer.uid,
      runtime,
      attack(
        runtime,
        `return {"uid": os.getuid(), "tmp": os.listdir("/tmp"), "secret": attempt(lambda: open("/tmp/secret").read())}`,
        `return { uid: process.getuid(), tmp: fs.readdirSync("/tmp"), secret: attempt(() => fs.readFileSync("/tmp/secret", "utf8")) };`,
      ),
    );
    // The same slot, so the same /tmp mount point; a warm writer keeps its slot, so the reader gets another.
    if (currentIsolation() === "invocation") expect(reader.uid).toBe(writer.uid);
    else expect(reader.uid).not.toBe(writer.uid);
    expect(reader.tmp).toEqual([]);
    expect(outcome(reader.secret)).toEqual({ ok: false, code: "ENOENT" });
  });

  it("a concurrent invocation in another slot cannot see a running one's /tmp", async () => {
    const secret = `secret-${crypto.randomBytes(4).toString("hex")}`;
    const writer = run(
      "python",
      py(`
        import time
        with open("/tmp/${secret}", "w") as f:
            f.write("the writer's secret")
        time.sleep(2)
        return {"tmp": os.listdir("/tmp")}
      `),
    );
    const onHost = await waitForSlotFile(secret);
    const writerSlot = path.basename(path.dirname(path.dirname(onHost)));
    const readers = await Promise.all(
      RUNTIMES.map((runtime) =>
        observe(
          runtime,
          attack(
            runtime,
            `return {"tmp": os.listdir("/tmp"), "secret": attempt(lambda: open("/tmp/${secret}").read()),
                     "sibling": attempt(lambda: os.listdir("/../../slots/${writerSlot}/tmp"))}`,
            `return { tmp: fs.readdirSync("/tmp"), secret: attempt(() => fs.readFileSync("/tmp/${secret}", "utf8")),
                      sibling: attempt(() => fs.readdirSync("/../../slots/${writerSlot}/tmp")) };`,
          ),
        ),
      ),
    );
    for (const reader of readers) {
      expect(reader.tmp).toEqual([]);
      expect(outcome(reader.secret)).toEqual({ ok: false, code: "ENOENT" });
      expect(outcome(reader.sibling)).toEqual({ ok: false, code: "ENOENT" });
    }
    const result = await writer;
    expect(result.status, bodyText(result)).toBe("ok");
    expect(bodyJson(result)).toEqual({ tmp: [secret] });
  });
});
