import { createHash, randomBytes } from "node:crypto";
import { VmtreeError } from "../errors.ts";
import type { NodeStore } from "../store/node-store.ts";
import { SerialQueue } from "../util/serial-queue.ts";
import { encodeJoinToken } from "./join-token.ts";
import { assertSiteId, parentOf } from "./site-id.ts";

/** A stored invitation; the secret itself is never stored, only its hash. */
export interface Invitation {
  site: string;
  createdMs: number;
  expiresMs: number;
  usedMs?: number;
}

/** A site this node has enrolled as a direct child. */
export interface EnrolledChild {
  site: string;
  epoch: number;
  /** Serial of the node certificate currently valid for the child; older ones are refused. */
  serial: string;
  /**
   * After a renewal, the serial the child renewed with: still accepted until the child
   * first presents `serial`, so that a renewal whose answer was lost locks nobody out.
   */
  previousSerial?: string;
  enrolledMs: number;
  /** When the node certificate was last renewed, if ever. */
  renewedMs?: number;
}

/** What {@link Invitations.redeem} checks a presented token against. */
export interface RedeemOptions {
  ownSite: string;
  site: string;
  secret: string;
  now?: number;
  /** When the site was last revoked: a token made before then is refused. */
  revokedAtMs?: number;
}

export const DEFAULT_INVITE_TTL_MS = 24 * 60 * 60 * 1000;
const MAX_INVITE_TTL_MS = 30 * 24 * 60 * 60 * 1000;

const hashSecret = (secret: string) => createHash("sha256").update(secret).digest("hex");

/**
 * Join tokens issued by this node and the children enrolled with them. A token is
 * single-use, expires, and is bound to one site id that must be a direct child of
 * this node's site.
 */
export class Invitations {
  readonly #store: NodeStore;
  readonly #invites;
  readonly #children;
  // Two joins with the same token must not both pass the "unused" check.
  readonly #redeems = new SerialQueue();

  constructor(store: NodeStore) {
    this.#store = store;
    this.#invites = store.section<Invitation>("invitation");
    this.#children = store.section<EnrolledChild>("child");
  }

  /**
   * Creates an invitation for `childSite` and returns its token.
   * Throws `invalid_argument` when the site is not a direct child of `ownSite` or the TTL is out of range.
   */
  async create(options: {
    ownSite: string;
    childSite: string;
    address: string;
    caFingerprint: string;
    ttlMs: number;
    now?: number;
  }): Promise<{ token: string; expiresMs: number }> {
    const { ownSite, childSite, ttlMs } = options;
    assertSiteId(childSite);
    if (parentOf(childSite) !== ownSite) {
      throw new VmtreeError("invalid_argument", `site ${childSite} is not a direct child of ${ownSite}; a child id is ${ownSite}.NAME`);
    }
    if (!Number.isFinite(ttlMs) || ttlMs < 1000 || ttlMs > MAX_INVITE_TTL_MS) {
      throw new VmtreeError("invalid_argument", `the token lifetime must be between 1 second and 30 days, got ${ttlMs / 1000} s`);
    }
    const now = options.now ?? Date.now();
    const secret = randomBytes(32).toString("base64url");
    const expiresMs = now + ttlMs;
    const invitation: Invitation = { site: childSite, createdMs: now, expiresMs };
    await this.#store.db.batch([{ type: "put", sublevel: this.#invites as never, key: hashSecret(secret), value: invitation }], { sync: true });
    const token = encodeJoinToken({ address: options.address, site: childSite, caFingerprint: options.caFingerprint, secret, expiresMs });
    return { token, expiresMs };
  }

  /**
   * Checks a presented secret for `site` and, with `enrol` producing the certificate
   * serial, atomically marks the invitation used and records the child with its next
   * epoch. Nothing is recorded when any check or `enrol` fails.
   * Throws `permission_denied` for an unknown, used, expired or foreign token.
   */
  async redeem<T extends { serial: string }>(
    options: RedeemOptions,
    enrol: (epoch: number) => Promise<T> | T,
  ): Promise<T & { epoch: number }> {
    return this.#redeems.run(() => this.#redeem(options, enrol));
  }

  async #redeem<T extends { serial: string }>(
    options: RedeemOptions,
    enrol: (epoch: number) => Promise<T> | T,
  ): Promise<T & { epoch: number }> {
    const now = options.now ?? Date.now();
    const key = hashSecret(options.secret);
    const invitation = await this.#invites.get(key);
    const refuse = (why: string) => new VmtreeError("permission_denied", `join refused for ${options.site}: ${why}`);
    if (!invitation) throw refuse("the token is not known here (it was issued by another node, or never)");
    if (invitation.usedMs !== undefined) throw refuse(`the token was already used at ${new Date(invitation.usedMs).toISOString()}`);
    if (invitation.expiresMs <= now) throw refuse(`the token expired at ${new Date(invitation.expiresMs).toISOString()}`);
    if (invitation.site !== options.site) throw refuse(`the token is bound to ${invitation.site}`);
    if (options.revokedAtMs !== undefined && invitation.createdMs <= options.revokedAtMs) {
      throw refuse(`the token was made before ${options.site} was revoked at ${new Date(options.revokedAtMs).toISOString()}; make a new invitation`);
    }
    if (parentOf(options.site) !== options.ownSite) throw refuse(`${options.site} is not a direct child of ${options.ownSite}`);
    const previous = await this.#children.get(options.site);
    const epoch = (previous?.epoch ?? 0) + 1;
    const result = await enrol(epoch);
    await this.#store.db.batch(
      [
        { type: "put", sublevel: this.#invites as never, key, value: { ...invitation, usedMs: now } },
        {
          type: "put",
          sublevel: this.#children as never,
          key: options.site,
          value: { site: options.site, epoch, serial: result.serial, enrolledMs: now } satisfies EnrolledChild,
        },
      ],
      { sync: true },
    );
    return { ...result, epoch };
  }

  /**
   * Renews the node certificate of the enrolled child `site`, which presented `presented`:
   * `sign` makes the certificate and its serial becomes the child's, while `presented`
   * stays accepted until the child presents the new one ({@link confirmSerial}). Epoch and
   * enrolment time are kept, so a revocation still covers the renewed certificate.
   * Throws `permission_denied` when `presented` is not (or no longer) the child's.
   */
  async renew<T extends { serial: string }>(site: string, presented: string, sign: () => T, now = Date.now()): Promise<T> {
    return this.#redeems.run(async () => {
      const child = await this.#children.get(site);
      if (!child || (child.serial !== presented && child.previousSerial !== presented)) {
        throw new VmtreeError("permission_denied", `site ${site} renewed with a certificate that is not its current one`);
      }
      const result = sign();
      const renewed: EnrolledChild = { ...child, serial: result.serial, previousSerial: presented, renewedMs: now };
      await this.#store.db.batch([{ type: "put", sublevel: this.#children as never, key: site, value: renewed }], { sync: true });
      return result;
    });
  }

  /** Records that `site` presented its renewed certificate `serial`: the one before it is refused from now on. */
  async confirmSerial(site: string, serial: string): Promise<void> {
    await this.#redeems.run(async () => {
      const child = await this.#children.get(site);
      if (!child || child.serial !== serial || child.previousSerial === undefined) return;
      const { previousSerial: _dropped, ...confirmed } = child;
      await this.#store.db.batch([{ type: "put", sublevel: this.#children as never, key: site, value: confirmed }], { sync: true });
    });
  }

  /** The enrolled child with this id, if any. */
  child(site: string): Promise<EnrolledChild | undefined> {
    return this.#children.get(site);
  }

  /** Every enrolled child, by id. */
  children(): Promise<EnrolledChild[]> {
    return this.#children.values().all();
  }
}
