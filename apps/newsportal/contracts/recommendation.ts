import { action } from '@chassis/core';
import { z } from 'zod';
import { Id } from './common.ts';
import { User } from './users.ts';

const Label = z.string().min(1).max(50);

export const userLabels = action('recommendation.user_labels', {
  description: 'The labels a user has read about, as the book returns them: `[{id: "<label>"}]`.',
  input: z.object({ id: Id }),
  output: z.array(z.object({ id: z.string() })),
  idempotent: true,
});

export const labelUsers = action('recommendation.label_users', {
  description: 'The users who read about a label.',
  input: z.object({ label: Label }),
  output: z.array(User),
  idempotent: true,
});

export const relatedLabels = action('recommendation.related_labels', {
  description:
    'Labels to recommend to a user: those read by the users who read about the same labels, which this user has not read about, ranked by how many of those readers read them (`readers`).',
  input: z.object({ id: Id }),
  output: z.array(z.object({ id: z.string(), readers: z.number().int().positive() })),
  idempotent: true,
});
