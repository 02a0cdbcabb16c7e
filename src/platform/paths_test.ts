import assert from "node:assert/strict";
import {
  MAX_SOCKET_PATH_BYTES,
  sessionPathsFor,
  socketPathFits,
  userPaths,
} from "./paths.ts";

const SUFFIX = "/.vigo-puddle/run/puddle.sock";

/** A home whose socket path is exactly `bytes` bytes; `é` is two bytes. */
function homeFor(bytes: number, multibyte = false): string {
  const fixed = "/h/" + (multibyte ? "é" : "");
  const fill = bytes - SUFFIX.length - new TextEncoder().encode(fixed).length;
  return fixed + "x".repeat(fill);
}

Deno.test("with XDG_RUNTIME_DIR the session dir is $XDG_RUNTIME_DIR/vigo", () => {
  const paths = sessionPathsFor({
    home: "/home/a",
    runtime: "/run/user/1000/",
    uid: 1000,
  });
  assert.equal(paths.sessionDir, "/run/user/1000/vigo");
  assert.equal(paths.sessionSocket, "/run/user/1000/vigo/puddle.sock");
  assert.equal(paths.sessionDirSource, "runtime");
  assert.equal(paths.sessionDirIsFallback, false);
});

Deno.test("without XDG_RUNTIME_DIR it is ~/.vigo-puddle/run while the socket path fits", () => {
  const paths = sessionPathsFor({ home: "/home/a/", uid: 1000 });
  assert.equal(paths.sessionDir, "/home/a/.vigo-puddle/run");
  assert.equal(paths.sessionSocket, "/home/a/.vigo-puddle/run/puddle.sock");
  assert.equal(paths.sessionDirSource, "home");
});

Deno.test("the 107-byte boundary counts UTF-8 bytes, not characters", () => {
  assert.equal(MAX_SOCKET_PATH_BYTES, 107);
  for (const multibyte of [false, true]) {
    const fits = sessionPathsFor({ home: homeFor(107, multibyte), uid: 7 });
    assert.equal(fits.sessionDirSource, "home");
    assert.equal(new TextEncoder().encode(fits.sessionSocket).length, 107);
    const over = sessionPathsFor({ home: homeFor(108, multibyte), uid: 7 });
    assert.equal(over.sessionDirSource, "tmp");
    assert.equal(over.sessionDir, "/tmp/vigo-7");
    assert.equal(over.sessionDirIsFallback, true);
  }
  // 107 characters but 108 bytes: too long.
  assert.equal(homeFor(108, true).length + SUFFIX.length, 107);
  assert.equal(socketPathFits(homeFor(108, true) + SUFFIX), false);
});

Deno.test("userPaths reads HOME and XDG_RUNTIME_DIR through the same rule", () => {
  const saved = {
    HOME: Deno.env.get("HOME"),
    XDG_RUNTIME_DIR: Deno.env.get("XDG_RUNTIME_DIR"),
  };
  try {
    Deno.env.set("HOME", "/home/zed");
    Deno.env.delete("XDG_RUNTIME_DIR");
    const paths = userPaths(5);
    assert.equal(paths.puddleDir, "/home/zed/.vigo-puddle");
    assert.equal(paths.sessionDir, "/home/zed/.vigo-puddle/run");
    Deno.env.set("XDG_RUNTIME_DIR", "/run/user/5");
    assert.equal(userPaths(5).sessionDir, "/run/user/5/vigo");
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) Deno.env.delete(name);
      else Deno.env.set(name, value);
    }
  }
});
