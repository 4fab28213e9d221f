// A contact's id on a channel, as the CRM writes it, in the form the channel's inbound messages use:
// so a contact the CRM creates is the same one that later writes in.
import { badRequest } from '../http/errors.ts';
import type { Channel } from '../schema/message.ts';
import { toE164 } from '../sms/phoneNumbers.ts';

/** The canonical channel id (E.164 phone, lower-case address, OpenID or visitor id as is); 400 when it cannot be one. */
export function canonicalChannelId(channel: Channel, raw: string): string {
  const value = raw.trim();
  switch (channel) {
    case 'sms': {
      // The SMS inbound's own normalization, so a number that wrote in can be written to (international form only:
      // a CRM call names no inbox region).
      const phone = /^(\+|00)/.test(value) ? toE164(value) : undefined;
      if (!phone) throw badRequest('channelId: an SMS contact is a phone number in E.164 form (+8613800138000)');
      return phone;
    }
    case 'email':
      if (!/^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/.test(value) || value.length > 254) throw badRequest('channelId: an email contact is an address (name@example.com)');
      return value.toLowerCase();
    case 'wechat':
      if (!/^[A-Za-z0-9_-]{6,64}$/.test(value)) throw badRequest("channelId: a WeChat contact is the user's OpenID for this official account");
      return value;
    case 'webchat':
      if (!/^[A-Za-z0-9_-]{1,100}$/.test(value)) throw badRequest('channelId: a web chat contact is a visitor id');
      return value;
  }
}
