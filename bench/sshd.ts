/**
 * A throwaway `sshd` on a loopback port, for comparing gitback with git over
 * ssh (what users pick today between machines): its own host key, one
 * client key, an authorized_keys file in a temporary directory; stopped by
 * pid afterwards. Needs Debian's `openssh-server` and root.
 *
 * @module
 */

import { runCommand } from "../src/platform/process.ts";

/** A running sshd and how git reaches it. */
export interface Sshd {
  port: number;
  /** `GIT_SSH_COMMAND` for git to log in with the throwaway key. */
  gitSshCommand: string;
  /** `ssh://root@127.0.0.1:<port><path>`. */
  url(path: string): string;
  stop(): Promise<void>;
}

const SSHD = "/usr/sbin/sshd";

/** True when sshd can be started here. */
export function canStartSshd(): boolean {
  try {
    return Deno.statSync(SSHD).isFile && Deno.uid() === 0;
  } catch {
    return false;
  }
}

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function keygen(path: string): Promise<void> {
  const out = await runCommand("ssh-keygen", {
    args: ["-q", "-t", "ed25519", "-N", "", "-f", path],
  });
  if (out.code !== 0) throw new Error(`ssh-keygen: ${out.stderr}`);
}

/** Starts sshd with everything under `dir`; resolves once it accepts. */
export async function startSshd(dir: string): Promise<Sshd> {
  await Deno.mkdir(dir, { recursive: true });
  await keygen(`${dir}/host_key`);
  await keygen(`${dir}/client_key`);
  Deno.writeTextFileSync(
    `${dir}/authorized_keys`,
    Deno.readTextFileSync(`${dir}/client_key.pub`),
  );
  // sshd's privilege separation directory; made only when missing.
  let madeRunDir = false;
  try {
    Deno.statSync("/run/sshd");
  } catch {
    Deno.mkdirSync("/run/sshd", { mode: 0o755 });
    madeRunDir = true;
  }
  const port = freePort();
  Deno.writeTextFileSync(
    `${dir}/sshd_config`,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${dir}/host_key`,
      `AuthorizedKeysFile ${dir}/authorized_keys`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UsePAM no",
      "StrictModes no",
      `PidFile ${dir}/sshd.pid`,
      "",
    ].join("\n"),
  );
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-f", `${dir}/sshd_config`, "-E", `${dir}/sshd.log`],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`sshd did not listen; see ${dir}/sshd.log`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  let stopped = false;
  return {
    port,
    gitSshCommand:
      `ssh -i ${dir}/client_key -o IdentitiesOnly=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR`,
    url: (path) => `ssh://root@127.0.0.1:${port}${path}`,
    stop: async () => {
      if (stopped) return;
      stopped = true;
      try {
        child.kill("SIGTERM");
      } catch {
        // Gone already.
      }
      await child.status;
      if (madeRunDir) Deno.removeSync("/run/sshd");
    },
  };
}
