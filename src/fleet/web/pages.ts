/**
 * The fleet server's web pages, rendered on the server: plain HTML in
 * UTF-8 with one inline `<style>`, no JavaScript and no external assets,
 * so that they work under a `default-src 'none'` content security policy.
 * Every value is escaped ({@link markup}); the ids, classes and `data-`
 * attributes are a stable contract for scripts and tests (docs/formats.md,
 * "The fleet server's web pages").
 *
 * @module
 */

import { type Badge, type PuddleRow, STALE_PERIODS } from "../health.ts";
import type { EnvoyReplica, GitbackRow } from "../gitback_mesh.ts";
import { markup, type SafeHtml } from "./html.ts";
import { formatBytes } from "../../platform/units.ts";

/** What every page's footer says about the data. */
export interface PageInfo {
  /** When the data was read (ISO 8601). */
  generatedAt: string;
  /** How many envoys have checked in. */
  envoys: number;
  /** The check-in period in seconds. */
  periodS: number;
}

const NAV = [
  { href: "/swarm/puddle", label: "Puddles" },
  { href: "/swarm/gitback", label: "Gitback" },
];

/** A whole document; the style sheet is literal text of the template. */
function page(options: {
  title: string;
  current?: string;
  body: SafeHtml;
  info?: PageInfo;
  json?: string;
}): string {
  const nav = NAV.map((n) =>
    n.href === options.current
      ? markup`<a href="${n.href}" aria-current="page">${n.label}</a>`
      : markup`<a href="${n.href}">${n.label}</a>`
  );
  return markup`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${options.title} · vigo swarm</title>
<style>
body { font: 15px/1.45 system-ui, sans-serif; margin: 0 auto; max-width: 80rem;
  padding: 0 1rem 2rem; color: #1d1d1f; background: #fff; }
nav { display: flex; gap: 1.5rem; padding: .8rem 0; border-bottom: 1px solid #ddd; }
nav a { color: #0b57d0; text-decoration: none; font-weight: 600; }
nav a[aria-current] { color: #1d1d1f; }
table { border-collapse: collapse; width: 100%; margin: 1rem 0; }
th, td { text-align: left; vertical-align: top; padding: .4rem .6rem;
  border-bottom: 1px solid #eee; }
th { font-weight: 600; border-bottom: 2px solid #ccc; }
td ul { margin: 0; padding-left: 1.1rem; }
code { font: 13px ui-monospace, monospace; overflow-wrap: anywhere; }
.badge { display: inline-block; padding: .05rem .5rem; border-radius: .7rem;
  font-size: 13px; font-weight: 600; }
.badge-healthy { background: #e3f4e6; color: #17602a; }
.badge-warning { background: #fff3d6; color: #7a5200; }
.badge-degraded { background: #fde4e2; color: #a1140c; }
[data-state=behind] { color: #7a5200; }
[data-state=diverged] { color: #a1140c; font-weight: 600; }
.stale { color: #777; font-style: italic; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .3rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
footer { margin-top: 2rem; color: #555; font-size: 13px; }
</style>
</head>
<body>
<header><nav>${nav}</nav></header>
<main>
<h1>${options.title}</h1>
${options.body}
</main>
${footer(options.info, options.json)}</body>
</html>
`.text;
}

function footer(info?: PageInfo, json?: string): SafeHtml {
  if (!info) return markup``;
  const envoys = info.envoys === 1
    ? "1 envoy checks in"
    : `${info.envoys} envoys check in`;
  return markup`<footer>
<p>Generated <time datetime="${info.generatedAt}">${info.generatedAt}</time>.
${envoys} every ${info.periodS} s; an envoy is stale after ${STALE_PERIODS} periods.</p>
${json ? markup`<p><a id="json" href="${json}">This page as JSON</a></p>` : ""}
</footer>
`;
}

function badgeSpan(badge: Badge): SafeHtml {
  return markup`<span class="badge badge-${badge.toLowerCase()}">${badge}</span>`;
}

function reasonList(reasons: string[]): SafeHtml {
  if (reasons.length === 0) return markup``;
  return markup`<ul>${reasons.map((r) => markup`<li>${r}</li>`)}</ul>`;
}

function staleAttribute(stale: boolean): SafeHtml {
  return stale ? markup` data-stale="true"` : markup``;
}

function staleMark(stale: boolean): SafeHtml {
  return stale ? markup` <span class="stale">(stale)</span>` : markup``;
}

function puddleRow(r: PuddleRow): SafeHtml {
  return markup`<tr class="puddle" data-key="${r.key}" data-badge="${r.badge}">
<td class="owner">${r.owner}</td>
<td class="short-key"><code title="${r.key}">${r.short_key}</code></td>
<td class="envoys" data-count="${r.envoys.length}">${r.envoys.length}: ${
    r.envoys.join(", ")
  }</td>
<td class="users">${r.users.join(", ")}</td>
<td class="unlocked" data-count="${r.unlocked_sessions}">${r.unlocked_sessions}</td>
<td class="badge">${badgeSpan(r.badge)}</td>
<td class="reasons">${reasonList(r.reasons)}</td>
</tr>
`;
}

/**
 * The Puddles page (`/swarm/puddle`): the puddlemesh, one table row per
 * puddle key, or a `p#empty` sentence instead of the table when no envoy
 * reports a puddle.
 */
export function renderPuddlesPage(rows: PuddleRow[], info: PageInfo): string {
  const body = rows.length === 0
    ? markup`<p id="empty">No envoy has reported a puddle yet.</p>`
    : markup`<table id="puddles">
<thead><tr><th scope="col">Owner</th><th scope="col">Key</th><th scope="col">Envoys</th><th scope="col">Users</th><th scope="col">Unlocked sessions</th><th scope="col">Health</th><th scope="col">Reasons</th></tr></thead>
<tbody>
${rows.map(puddleRow)}</tbody>
</table>`;
  return page({
    title: "Puddles",
    current: "/swarm/puddle",
    body,
    info,
    json: "/swarm/puddle.json",
  });
}

function envoyState(e: EnvoyReplica): SafeHtml {
  return markup`<li data-envoy="${e.envoy}" data-state="${e.state}"${
    staleAttribute(e.stale)
  }>${e.envoy}: ${e.state}${staleMark(e.stale)}</li>`;
}

function projectHref(projectId: string): string {
  return `/swarm/gitback/${projectId}`;
}

function projectRow(r: GitbackRow): SafeHtml {
  const friendly = r.friendly_url
    ? markup`<code class="friendly-url">${r.friendly_url}</code><br>`
    : "";
  return markup`<tr class="project" data-project="${r.project_id}" data-badge="${r.badge}">
<td class="handle"><a href="${projectHref(r.project_id)}">${r.handle}</a></td>
<td class="scope">${r.scope}</td>
<td class="urls">${friendly}<code class="url">${r.url}</code></td>
<td class="envoys" data-count="${r.envoys.length}"><ul class="envoy-states">${
    r.envoys.map(envoyState)
  }</ul></td>
<td class="badge">${badgeSpan(r.badge)}</td>
<td class="reasons">${reasonList(r.reasons)}</td>
</tr>
`;
}

/**
 * The Gitback page (`/swarm/gitback`): the gitbackmesh, one table row per
 * project, or a `p#empty` sentence instead of the table when no envoy
 * reports a project.
 */
export function renderGitbackPage(rows: GitbackRow[], info: PageInfo): string {
  const body = rows.length === 0
    ? markup`<p id="empty">No envoy has reported a gitback project yet.</p>`
    : markup`<table id="projects">
<thead><tr><th scope="col">Handle</th><th scope="col">Scope</th><th scope="col">URL</th><th scope="col">Envoys</th><th scope="col">Health</th><th scope="col">Reasons</th></tr></thead>
<tbody>
${rows.map(projectRow)}</tbody>
</table>`;
  return page({
    title: "Gitback",
    current: "/swarm/gitback",
    body,
    info,
    json: "/swarm/gitback.json",
  });
}

function replicaRow(e: EnvoyReplica): SafeHtml {
  return markup`<tr data-envoy="${e.envoy}" data-state="${e.state}"${
    staleAttribute(e.stale)
  }>
<td class="envoy">${e.envoy}</td>
<td class="state">${e.state}${staleMark(e.stale)}</td>
<td class="signed-seq">${e.signed_seq ?? "none"}</td>
<td class="heads">${e.heads_count}</td>
<td class="repo-bytes" data-bytes="${e.repo_bytes}">${
    formatBytes(e.repo_bytes)
  }</td>
<td class="revokes">${e.revokes}</td>
<td class="leaves">${e.leaves}</td>
<td class="delegations">${e.delegations}</td>
<td class="tombstoned">${e.tombstoned ? "yes" : "no"}</td>
</tr>
`;
}

/**
 * One project's page (`/swarm/gitback/<project id>`): its details
 * (`dl#details`), a `table#envoys` with each envoy's replica, and the
 * `ul#members` list.
 */
export function renderProjectPage(row: GitbackRow, info: PageInfo): string {
  const founder = row.founder ? markup`<code>${row.founder}</code>` : "unknown";
  const friendly = row.friendly_url
    ? markup`<code>${row.friendly_url}</code>`
    : "none";
  const reasons = row.reasons.length > 0 ? reasonList(row.reasons) : "none";
  const members = row.members.map((key) =>
    markup`<li data-key="${key}"><code>${key}</code>${
      key === row.founder ? " (founder)" : ""
    }</li>
`
  );
  const body = markup`<dl id="details">
<dt>Project id</dt><dd class="project-id"><code>${row.project_id}</code></dd>
<dt>Handle</dt><dd class="handle">${row.handle}</dd>
<dt>Scope</dt><dd class="scope">${row.scope}</dd>
<dt>Founder</dt><dd class="founder">${founder}</dd>
<dt>Friendly URL</dt><dd class="friendly-url">${friendly}</dd>
<dt>URL</dt><dd class="url"><code>${row.url}</code></dd>
<dt>Health</dt><dd class="badge" data-badge="${row.badge}">${
    badgeSpan(row.badge)
  }</dd>
<dt>Reasons</dt><dd class="reasons">${reasons}</dd>
</dl>
<h2>Envoys</h2>
<table id="envoys">
<thead><tr><th scope="col">Envoy</th><th scope="col">State</th><th scope="col">Signed seq</th><th scope="col">Heads</th><th scope="col">Repository</th><th scope="col">Revokes</th><th scope="col">Leaves</th><th scope="col">Delegations</th><th scope="col">Tombstoned</th></tr></thead>
<tbody>
${row.envoys.map(replicaRow)}</tbody>
</table>
<h2>Members</h2>
<ul id="members">
${members}</ul>`;
  return page({
    title: `Project ${row.handle}`,
    body,
    info,
    json: `${projectHref(row.project_id)}.json`,
  });
}

/** A page saying what was not found, in `p#message`. */
export function renderNotFoundPage(message: string): string {
  return renderErrorPage("Not found", message);
}

/** A page with a heading and one sentence in `p#message`, for errors. */
export function renderErrorPage(heading: string, message: string): string {
  return page({
    title: heading,
    body: markup`<p id="message">${message}</p>`,
  });
}
