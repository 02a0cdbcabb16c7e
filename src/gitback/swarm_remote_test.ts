import assert from "node:assert/strict";
import {
  ensureSwarmRemote,
  swarmRemoteUrl,
  workTreeTop,
} from "./swarm_remote.ts";
import { git } from "./repo.ts";

Deno.test("the swarm remote is added, kept, left pointing elsewhere, or re-pointed", async () => {
  const dir = Deno.realPathSync(Deno.makeTempDirSync());
  try {
    assert.equal(await workTreeTop(dir), null);
    const repo = `${dir}/work`;
    await git(["init", "--quiet", repo]);
    Deno.mkdirSync(`${repo}/sub`);
    assert.equal(await workTreeTop(`${repo}/sub`), repo);
    assert.equal(await swarmRemoteUrl(repo), null);

    const url = `gitback://${"a".repeat(64)}/work`;
    const other = `gitback://${"b".repeat(64)}/work`;
    assert.equal(await ensureSwarmRemote(repo, url, false), "added");
    assert.equal(await swarmRemoteUrl(repo), url);
    assert.equal(await ensureSwarmRemote(repo, url, true), "kept");
    assert.equal(await ensureSwarmRemote(repo, other, false), "elsewhere");
    assert.equal(await swarmRemoteUrl(repo), url);
    assert.equal(await ensureSwarmRemote(repo, other, true), "repointed");
    assert.equal(await swarmRemoteUrl(repo), other);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
