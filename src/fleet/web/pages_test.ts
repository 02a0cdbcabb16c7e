import assert from "node:assert/strict";
import type { PuddleRow } from "../health.ts";
import type { EnvoyReplica, GitbackRow } from "../gitback_mesh.ts";
import { escapeHtml, markup } from "./html.ts";
import {
  type PageInfo,
  renderErrorPage,
  renderGitbackPage,
  renderNotFoundPage,
  renderProjectPage,
  renderPuddlesPage,
} from "./pages.ts";

const K1 = "ed25519:" + "a".repeat(64);
const K2 = "ed25519:" + "b".repeat(64);
const P1 = "1".repeat(64);
const INFO: PageInfo = {
  generatedAt: "2025-03-04T05:06:07.000Z",
  envoys: 3,
  periodS: 60,
};
const HOSTILE = `x"><script>alert(1)</script><img src=x onerror=alert(1)>'&`;

function puddle(over: Partial<PuddleRow> = {}): PuddleRow {
  return {
    key: K1,
    short_key: "ed25519:aaaaaaaaaaaa",
    owner: "dan",
    envoys: ["envoy-a", "envoy-b"],
    users: ["dan", "root"],
    unlocked_sessions: 1,
    badge: "Healthy",
    reasons: [],
    ...over,
  };
}

function replica(over: Partial<EnvoyReplica> = {}): EnvoyReplica {
  return {
    envoy: "envoy-a",
    state: "in sync",
    stale: false,
    signed_seq: 4,
    heads_count: 2,
    repo_bytes: 3 * 1024 * 1024,
    revokes: 1,
    leaves: 0,
    delegations: 2,
    tombstoned: false,
    ...over,
  };
}

function project(over: Partial<GitbackRow> = {}): GitbackRow {
  return {
    project_id: P1,
    handle: "notes",
    scope: "members-only",
    founder: K1,
    friendly_url: "gitback://dan/notes",
    url: `gitback://${P1}/notes`,
    envoys: [
      replica(),
      replica({ envoy: "envoy-b", state: "behind", stale: true }),
    ],
    members: [K1, K2],
    badge: "Warning",
    reasons: ["envoy-b is behind (signed seq 3, envoy-a at signed seq 4)"],
    ...over,
  };
}

/** The parts every page shares: a document, UTF-8, no script, one style. */
function assertDocument(page: string) {
  assert.ok(page.startsWith("<!DOCTYPE html>\n"));
  assert.ok(page.includes('<meta charset="utf-8">'));
  assert.equal(page.match(/<style>/g)?.length, 1);
  assert.doesNotMatch(page, /<script|<link|<img|<iframe|https?:\/\//i);
  assert.ok(page.includes('<a href="/swarm/puddle"'));
  assert.ok(page.includes('<a href="/swarm/gitback"'));
}

function assertFooter(page: string, json: string) {
  assert.ok(page.includes(
    "3 envoys check in every 60 s; an envoy is stale after 3 periods.",
  ));
  assert.ok(page.includes('<time datetime="2025-03-04T05:06:07.000Z">'));
  assert.ok(page.includes(`<a id="json" href="${json}">`));
}

Deno.test("markup escapes every value unless it is markup itself", () => {
  assert.equal(
    escapeHtml(`<a href="x">'&'</a>`),
    "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;",
  );
  const inner = markup`<b>${"<i>"}</b>`;
  assert.equal(
    markup`<p title="${'"'}">${inner}${[
      "<",
      markup`<br>`,
      3,
    ]}${null}${undefined}${true}</p>`
      .text,
    '<p title="&quot;"><b>&lt;i&gt;</b>&lt;<br>3true</p>',
  );
  // Something shaped like markup but not made by `markup` is text.
  const forged = { text: "<script>" } as unknown as string;
  assert.equal(markup`${forged}`.text, "[object Object]");
});

Deno.test("the Puddles page has one row per puddle with its hooks", () => {
  const page = renderPuddlesPage([
    puddle(),
    puddle({
      key: K2,
      short_key: "ed25519:bbbbbbbbbbbb",
      owner: "(unnamed)",
      envoys: ["envoy-c"],
      users: ["ann"],
      unlocked_sessions: 0,
      badge: "Degraded",
      reasons: ["first reason", "second reason"],
    }),
  ], INFO);
  assertDocument(page);
  assert.ok(page.includes("<title>Puddles · vigo swarm</title>"));
  assert.ok(page.includes('<a href="/swarm/puddle" aria-current="page">'));
  assert.ok(page.includes('<table id="puddles">'));
  assert.equal(page.match(/<tr class="puddle"/g)?.length, 2);
  assert.ok(
    page.includes(`<tr class="puddle" data-key="${K1}" data-badge="Healthy">`),
  );
  assert.ok(page.includes('<td class="owner">dan</td>'));
  assert.ok(page.includes('<td class="owner">(unnamed)</td>'));
  assert.ok(page.includes('<td class="short-key"><code title="'));
  assert.ok(
    page.includes('<td class="envoys" data-count="2">2: envoy-a, envoy-b</td>'),
  );
  assert.ok(page.includes('<td class="users">dan, root</td>'));
  assert.ok(page.includes('<td class="unlocked" data-count="1">1</td>'));
  assert.ok(page.includes('<td class="unlocked" data-count="0">0</td>'));
  assert.ok(page.includes(
    '<td class="badge"><span class="badge badge-healthy">Healthy</span></td>',
  ));
  assert.ok(
    page.includes('<span class="badge badge-degraded">Degraded</span>'),
  );
  assert.ok(page.includes(
    '<td class="reasons"><ul><li>first reason</li><li>second reason</li></ul></td>',
  ));
  assert.ok(page.includes('<td class="reasons"></td>'));
  assert.ok(!page.includes('id="empty"'));
  assertFooter(page, "/swarm/puddle.json");
});

Deno.test("empty meshes say so instead of showing a table", () => {
  const puddles = renderPuddlesPage([], { ...INFO, envoys: 1 });
  assert.match(puddles, /<p id="empty">[^<]+<\/p>/);
  assert.ok(!puddles.includes("<table"));
  assert.ok(puddles.includes("1 envoy checks in every 60 s"));
  const gitback = renderGitbackPage([], INFO);
  assert.match(gitback, /<p id="empty">[^<]+<\/p>/);
  assert.ok(!gitback.includes("<table"));
});

Deno.test("the Gitback page lists projects with envoy states", () => {
  const page = renderGitbackPage([
    project(),
    project({
      project_id: "2".repeat(64),
      handle: "other",
      friendly_url: null,
      url: `gitback://${"2".repeat(64)}/other`,
      envoys: [replica({ state: "diverged" })],
      badge: "Degraded",
      reasons: [],
    }),
  ], INFO);
  assertDocument(page);
  assert.ok(page.includes('<a href="/swarm/gitback" aria-current="page">'));
  assert.ok(page.includes('<table id="projects">'));
  assert.equal(page.match(/<tr class="project"/g)?.length, 2);
  assert.ok(page.includes(
    `<tr class="project" data-project="${P1}" data-badge="Warning">`,
  ));
  assert.ok(page.includes(
    `<td class="handle"><a href="/swarm/gitback/${P1}">notes</a></td>`,
  ));
  assert.ok(page.includes('<td class="scope">members-only</td>'));
  assert.ok(
    page.includes('<code class="friendly-url">gitback://dan/notes</code>'),
  );
  assert.ok(page.includes(`<code class="url">gitback://${P1}/notes</code>`));
  assert.equal(page.match(/class="friendly-url"/g)?.length, 1);
  assert.ok(page.includes(
    '<ul class="envoy-states"><li data-envoy="envoy-a" data-state="in sync">envoy-a: in sync</li>' +
      '<li data-envoy="envoy-b" data-state="behind" data-stale="true">envoy-b: behind <span class="stale">(stale)</span></li></ul>',
  ));
  assert.ok(
    page.includes('<li data-envoy="envoy-a" data-state="diverged">'),
  );
  assert.ok(page.includes('<span class="badge badge-warning">Warning</span>'));
  assert.ok(page.includes(
    "<li>envoy-b is behind (signed seq 3, envoy-a at signed seq 4)</li>",
  ));
  assertFooter(page, "/swarm/gitback.json");
});

Deno.test("a project's page shows details, envoys and members", () => {
  const page = renderProjectPage(project(), INFO);
  assertDocument(page);
  assert.ok(page.includes("<h1>Project notes</h1>"));
  assert.ok(page.includes('<dl id="details">'));
  assert.ok(page.includes(`<code>${P1}</code>`));
  assert.ok(page.includes('<dd class="badge" data-badge="Warning">'));
  assert.ok(page.includes('<table id="envoys">'));
  assert.ok(page.includes('<tr data-envoy="envoy-a" data-state="in sync">'));
  assert.ok(page.includes(
    '<tr data-envoy="envoy-b" data-state="behind" data-stale="true">',
  ));
  assert.ok(page.includes('<td class="signed-seq">4</td>'));
  assert.ok(page.includes('data-bytes="3145728">3.0 MB</td>'));
  assert.ok(page.includes('<ul id="members">'));
  assert.ok(page.includes(`<li data-key="${K1}"><code>${K1}</code> (founder)`));
  assert.ok(page.includes(`<li data-key="${K2}"><code>${K2}</code></li>`));
  assertFooter(page, `/swarm/gitback/${P1}.json`);
  const bare = renderProjectPage(
    project({
      founder: null,
      friendly_url: null,
      members: [],
      envoys: [replica({ signed_seq: null, repo_bytes: 820 })],
      reasons: [],
    }),
    INFO,
  );
  assert.ok(bare.includes('<dd class="founder">unknown</dd>'));
  assert.ok(bare.includes('<dd class="friendly-url">none</dd>'));
  assert.ok(bare.includes('<td class="signed-seq">none</td>'));
  assert.ok(bare.includes('data-bytes="820">820 B</td>'));
});

Deno.test("not-found and error pages carry their message", () => {
  const page = renderNotFoundPage("No envoy reports that project.");
  assertDocument(page);
  assert.ok(page.includes("<h1>Not found</h1>"));
  assert.ok(
    page.includes('<p id="message">No envoy reports that project.</p>'),
  );
  assert.ok(!page.includes("<footer>"));
  assert.ok(
    renderErrorPage("Server error", "Try again.").includes(
      "<h1>Server error</h1>",
    ),
  );
});

Deno.test("hostile values never become markup", () => {
  const pages = [
    renderPuddlesPage([
      puddle({
        key: HOSTILE,
        short_key: HOSTILE,
        owner: HOSTILE,
        envoys: [HOSTILE],
        users: [HOSTILE],
        badge: "Warning",
        reasons: ["<script>alert(1)</script>", HOSTILE],
      }),
    ], { ...INFO, generatedAt: HOSTILE }),
    renderGitbackPage([
      project({
        handle: HOSTILE,
        friendly_url: HOSTILE,
        url: HOSTILE,
        envoys: [replica({ envoy: HOSTILE, stale: true })],
        reasons: ["<script>alert(1)</script>"],
      }),
    ], INFO),
    renderProjectPage(
      project({
        handle: HOSTILE,
        founder: HOSTILE,
        friendly_url: HOSTILE,
        members: [HOSTILE],
        envoys: [replica({ envoy: HOSTILE })],
        reasons: ["<script>alert(1)</script>"],
      }),
      INFO,
    ),
    renderNotFoundPage(HOSTILE),
  ];
  const escaped = escapeHtml(HOSTILE);
  for (const page of pages) {
    assertDocument(page);
    assert.ok(page.includes(escaped));
    assert.ok(!page.includes(HOSTILE));
    // Every `"` in the page delimits an attribute value of the markup's own.
    assert.ok(!page.replace(/="[^"]*"/g, "").includes('"'));
    for (const tag of page.match(/<[^>]*>/g) ?? []) {
      assert.doesNotMatch(tag.replace(/="[^"]*"/g, ""), /onerror/, tag);
    }
  }
  assert.ok(pages[0].includes(`data-key="${escaped}"`));
  assert.ok(
    pages[0].includes("<li>&lt;script&gt;alert(1)&lt;/script&gt;</li>"),
  );
  assert.ok(pages[1].includes(`<li data-envoy="${escaped}"`));
  assert.ok(
    pages[2].includes(`<title>Project ${escaped} · vigo swarm</title>`),
  );
});
