import { type Context, defineService, handle, on } from '@chassis/core';
import { database, sql } from '@chassis/data';
import type { Generated } from 'kysely';
import { listNotifications } from '../../contracts/notifications.ts';
import { orderCanceled, orderCompleted, orderFailed, orderRejected } from '../../contracts/orders.ts';
import { paymentCompleted } from '../../contracts/payments.ts';
import { requireAccount } from '../shared/access.ts';

type Channel = 'email' | 'sms';

interface NotificationsTables {
  contact_preferences: { account_id: string; channel: Channel; address: string };
  notifications: {
    id: Generated<number>;
    account_id: string;
    channel: Channel;
    address: string | null;
    subject: string;
    body: string;
    event_id: string;
    sent_at: Generated<Date>;
  };
}

interface Message {
  accountId: string;
  /** `<event name>:<order or payment id>`: what makes a notification unique. */
  eventId: string;
  subject: string;
  body: string;
}

const verb = (side: 'sell' | 'buy') => (side === 'sell' ? 'sold' : 'bought');

/**
 * Notifications: tells customers what became of their orders and payments. "Sending" is a row in the
 * `notifications` sink on the channel of the account's contact preference (email or SMS), one per event
 * even when the event comes again (the inbox, and the event's unique key in the sink).
 */
/**
 * Every handler writes one row per event id (the order's, or the payment's) and skips it when it is
 * there: delivered again, it changes nothing, so it needs no inbox row. One insert that calls nothing:
 * the deliveries in flight together commit as one transaction.
 */
const IDEMPOTENT = { idempotent: true, groupCommit: true } as const;

export function notificationsService() {
  return defineService({
    name: 'notifications',
    version: '0.1.0',
    migrations: new URL('./migrations/', import.meta.url),
    events: [
      on(
        orderCompleted,
        (order, ctx) =>
          send(ctx, {
            accountId: order.accountId,
            eventId: `${orderCompleted.name}:${order.orderId}`,
            subject: `Your ${order.side} order for ${order.quantity} ${order.symbol} is complete`,
            body: `Order ${order.orderId}: ${verb(order.side)} ${order.quantity} ${order.symbol} at ${order.price} a share.`,
          }),
        IDEMPOTENT,
      ),
      on(
        orderFailed,
        (order, ctx) =>
          send(ctx, {
            accountId: order.accountId,
            eventId: `${orderFailed.name}:${order.orderId}`,
            subject: `Your ${order.side} order for ${order.quantity} ${order.symbol} failed`,
            body: `Order ${order.orderId} could not be completed: ${order.reason}. Nothing was ${verb(order.side)}, and any fee taken is refunded.`,
          }),
        IDEMPOTENT,
      ),
      on(
        orderCanceled,
        (order, ctx) =>
          send(ctx, {
            accountId: order.accountId,
            eventId: `${orderCanceled.name}:${order.orderId}`,
            subject: `Your ${order.side} order for ${order.quantity} ${order.symbol} was canceled`,
            body: `Order ${order.orderId} was canceled before it reached the exchange. Nothing was ${verb(order.side)}, and any fee taken is refunded.`,
          }),
        IDEMPOTENT,
      ),
      on(
        orderRejected,
        (order, ctx) =>
          send(ctx, {
            accountId: order.accountId,
            eventId: `${orderRejected.name}:${order.orderId}`,
            subject: `Your ${order.side} order for ${order.quantity} ${order.symbol} was rejected`,
            body: `Order ${order.orderId} was not accepted: ${order.reason}.`,
          }),
        IDEMPOTENT,
      ),
      on(
        paymentCompleted,
        (payment, ctx) =>
          send(ctx, {
            accountId: payment.accountId,
            eventId: `${paymentCompleted.name}:${payment.paymentId}`,
            subject: `Payment of ${payment.amount} received`,
            body: `Payment ${payment.paymentId}: ${payment.amount} was credited to account ${payment.accountId}.`,
          }),
        IDEMPOTENT,
      ),
    ],
    actions: [
      handle(listNotifications, async ({ accountId, page, size }, ctx) => {
        requireAccount(ctx.user, accountId);
        const db = await database<NotificationsTables>(ctx);
        const rows = await db
          .selectFrom('notifications')
          .selectAll()
          .where('account_id', '=', accountId)
          .orderBy('sent_at', 'desc')
          .orderBy('id', 'desc')
          .limit(size)
          .offset((page - 1) * size)
          .execute();
        const notifications = rows.map((row) => ({
          id: Number(row.id),
          accountId: row.account_id,
          channel: row.channel,
          address: row.address,
          subject: row.subject,
          body: row.body,
          eventId: row.event_id,
          sentAt: new Date(row.sent_at).toISOString(),
        }));
        return { accountId, page, size, notifications };
      }),
    ],
  });
}

/**
 * "Sends" a message on the account's preferred channel: a row in the sink, once per event. One statement:
 * the preference is read by the insert itself (address is null exactly when the account has none).
 */
async function send(ctx: Context, message: Message): Promise<void> {
  const db = await database<NotificationsTables>(ctx);
  const table = (name: string) => sql.id('notifications', name);
  const { rows } = await sql<{ channel: string; address: string | null }>`
    insert into ${table('notifications')} (account_id, channel, address, subject, body, event_id)
    select ${message.accountId}, coalesce(c.channel, 'email'), c.address, ${message.subject}, ${message.body},
      ${message.eventId}
    from (values (1)) as one
    left join ${table('contact_preferences')} as c on c.account_id = ${message.accountId}
    on conflict (event_id) do nothing
    returning channel, address`.execute(db);
  const sent = rows[0];
  if (!sent) return;
  const { channel, address } = sent;
  const fields = { accountId: message.accountId, channel, eventId: message.eventId };
  if (address !== null) ctx.log.info({ ...fields, to: address }, `${channel} to ${address}: ${message.subject}`);
  // `info`, not `warn`: an account without a contact preference is an ordinary state, not something for an
  // operator to act on, and the kept row (address null, `GET /notifications`) already records it. As a
  // warning it was a JSON line, redaction and a stdout write in the edge for every order end and payment
  // of such an account: every order of the benchmark's customers.
  else ctx.log.info(fields, `account ${message.accountId} has no contact preference: "${message.subject}" is kept`);
}
