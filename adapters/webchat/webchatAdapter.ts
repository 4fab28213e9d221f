// Web chat: the visitor's socket is the channel, so sending is handing the reply to the live feed
// (the message.sent event reaches the visitor's socket on whichever web process holds it).
import type { ChannelAdapter, SendRequest, SendResult } from '../channelAdapter.ts';

export class WebchatAdapter implements ChannelAdapter {
  readonly type = 'webchat';

  async send(request: SendRequest): Promise<SendResult> {
    return { status: 'sent', externalId: request.message.id };
  }
}
