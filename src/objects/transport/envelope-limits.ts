// Bounds on what one envelope may carry (the platform's own limit is 32 MiB per RPC payload). Apart from
// envelope.ts so that the envelope's reader and its reference schemas share them without an import cycle.
export const MAX_MESSAGES_PER_ENVELOPE = 1024;
export const MAX_ENTRIES_PER_MESSAGE = 65_536;
export const MAX_NAME_LENGTH = 256;
export const MAX_READ_CONTEXT_LENGTH = 1024;
export const MAX_MEMBERS = 256;
