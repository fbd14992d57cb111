import { action } from '@chassis/core';
import { z } from 'zod';
import { AccountId } from './common.ts';

export const Channel = z.enum(['email', 'sms']);

export const Notification = z.object({
  id: z.number().int(),
  accountId: AccountId,
  channel: Channel,
  /** Where it went: the account's contact preference; null when the account has none. */
  address: z.string().nullable(),
  subject: z.string(),
  body: z.string(),
  /** What it tells of: `<event name>:<order or payment id>`, one notification per event. */
  eventId: z.string(),
  sentAt: z.string(),
});

/** What was sent about an account, newest first (`GET /notifications?accountId`). */
export const listNotifications = action('notifications.listNotifications', {
  input: z.object({
    accountId: AccountId,
    page: z.number().int().min(1).default(1),
    size: z.number().int().min(1).max(100).default(20),
  }),
  output: z.object({
    accountId: AccountId,
    page: z.number(),
    size: z.number(),
    notifications: z.array(Notification),
  }),
  idempotent: true,
});
