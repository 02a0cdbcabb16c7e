/**
 * The frame of a test on a real local fleet: root only, a temporary
 * directory, a fleet in it, and both gone afterwards whatever happened.
 *
 * @module
 */

import {
  type Fleet,
  fleetDown,
  type FleetOptions,
  fleetUp,
} from "../../scripts/fleet.ts";

/** What a fleet test's body is given. */
export interface FleetCase {
  /** The test's temporary directory; the fleet lives in `<dir>/fleet`. */
  dir: string;
  fleet: Fleet;
  t: Deno.TestContext;
}

/**
 * Registers a test (skipped unless run as root) that makes a temporary
 * directory prefixed `prefix`, brings up a fleet of `options` in
 * `<dir>/fleet`, runs `body`, then brings the fleet down and removes the
 * directory. Its agents outlive single steps, so the resource and op
 * sanitizers are off.
 */
export function fleetTest(
  name: string,
  { prefix, ...options }: FleetOptions & { prefix: string },
  body: (fleetCase: FleetCase) => Promise<void>,
): void {
  Deno.test({
    name,
    ignore: Deno.uid() !== 0,
    sanitizeResources: false,
    sanitizeOps: false,
    fn: async (t) => {
      const dir = Deno.makeTempDirSync({ prefix });
      let fleet: Fleet | undefined;
      try {
        fleet = await fleetUp(`${dir}/fleet`, options);
        await body({ dir, fleet, t });
      } finally {
        if (fleet) await fleetDown(`${dir}/fleet`);
        Deno.removeSync(dir, { recursive: true });
      }
    },
  });
}
