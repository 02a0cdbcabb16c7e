/**
 * Unix account lookups from the passwd database.
 *
 * @module
 */

/** One passwd entry. */
export interface UnixUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
  shell: string;
}

/** Parses passwd-format text into entries, skipping malformed lines. */
export function parsePasswd(text: string): UnixUser[] {
  const users: UnixUser[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    if (fields.length < 7 || line.startsWith("#")) continue;
    const uid = Number(fields[2]);
    const gid = Number(fields[3]);
    if (!Number.isInteger(uid) || !Number.isInteger(gid)) continue;
    users.push({
      name: fields[0],
      uid,
      gid,
      home: fields[5],
      shell: fields[6],
    });
  }
  return users;
}

/** Every account in `/etc/passwd`. */
export function listUsers(passwdPath = "/etc/passwd"): UnixUser[] {
  return parsePasswd(Deno.readTextFileSync(passwdPath));
}

/** The account named `name`, or undefined. */
export function userByName(
  name: string,
  passwdPath = "/etc/passwd",
): UnixUser | undefined {
  return listUsers(passwdPath).find((u) => u.name === name);
}

/** The account with `uid`, or undefined. */
export function userByUid(
  uid: number,
  passwdPath = "/etc/passwd",
): UnixUser | undefined {
  return listUsers(passwdPath).find((u) => u.uid === uid);
}
