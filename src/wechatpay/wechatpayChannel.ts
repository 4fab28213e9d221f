// The WeChat Pay notify URL: a notification is verified, decrypted and durably queued before it is
// acknowledged (204); anything else answers WeChat Pay's own failure shape, so it retries.
import type { Context } from 'koa';
import {
  decryptWechatpayResource, normalizeWechatpayResource, parseWechatpayNotification, verifyWechatpaySignature, WechatpayAuthError,
  WechatpayPayloadError,
} from '../../adapters/wechatpay/wechatpayNotification.ts';
import type { ApiRegistry } from '../http/apiRoutes.ts';
import type { InboxDirectory } from '../inboxes/inboxDirectory.ts';
import { InboundBusyError, type InboundAcceptor } from '../ingest/acceptInbound.ts';
import type { Logger } from '../logger.ts';

import type { PlatformCertificates, WechatpayCredentials } from './platformCertificates.ts';

export class WechatpayChannel {
  constructor(private readonly deps: { inboxes: InboxDirectory; acceptor: InboundAcceptor; log: Logger; certificates: PlatformCertificates }) {}

  registerRoutes(api: ApiRegistry): void {
    api.add({
      method: 'post', path: '/wechatpay/:inboxId/notify', tag: 'Providers', auth: 'provider',
      produces: '204 once queued; failures {"code":"FAIL","message"} with 4xx/5xx',
      summary: 'WeChat Pay API v3 notifications (signature, 5-minute timestamp window, AES-256-GCM with its tag checked)',
      handler: async (ctx, { params }) => {
        try {
          await this.receive(ctx, params.inboxId!);
          ctx.status = 204;
          return undefined;
        } catch (error) {
          const [status, message] = error instanceof WechatpayAuthError ? [401, error.message]
            : error instanceof WechatpayPayloadError ? [400, error.message]
              : error instanceof InboxNotFound ? [404, 'inbox not found']
                : error instanceof InboundBusyError ? [503, '系统繁忙'] : [500, '失败'];
          // Busy is expected under load and WeChat Pay sends the notification again: a warning, not an error.
          if (status === 503) this.deps.log.warn({ inboxId: params.inboxId }, 'wechatpay notification refused: busy; left for the retry');
          if (status === 500) this.deps.log.error({ err: (error as Error).message, inboxId: params.inboxId }, 'wechatpay notification failed');
          ctx.status = status;
          ctx.body = { code: 'FAIL', message };
          return undefined;
        }
      },
    });
  }

  private async receive(ctx: Context, inboxId: string): Promise<void> {
    const inbox = await this.deps.inboxes.records.getAnyAccount(inboxId);
    if (!inbox || inbox.type !== 'wechatpay' || !inbox.enabled) throw new InboxNotFound();
    const credentials = this.deps.inboxes.credentials(inbox) as unknown as WechatpayCredentials;
    const rawBody = ctx.request.rawBody ?? Buffer.alloc(0);
    const headers = ctx.headers as Record<string, string>;
    const { certificates } = this.deps;
    try {
      verifyWechatpaySignature({ headers, rawBody, keys: await certificates.verificationKeys(inbox, credentials) });
    } catch (error) {
      // A serial we have not seen: WeChat Pay rotated its certificate. Download the current ones once and check again.
      if (!(error instanceof WechatpayAuthError && error.unknownSerial)) throw error;
      const fetched = await certificates.refresh(inbox, credentials).catch((e: Error) => {
        this.deps.log.warn({ inboxId: inbox.id, err: e.message }, 'wechatpay certificate download failed');
        return false;
      });
      if (!fetched) throw error;
      verifyWechatpaySignature({ headers, rawBody, keys: await certificates.verificationKeys(inbox, credentials) });
    }
    const notification = parseWechatpayNotification(rawBody);
    const payment = normalizeWechatpayResource(notification, decryptWechatpayResource(credentials.apiV3Key, notification.resource));
    if (!payment) return; // another event type: acknowledged, nothing to record
    await this.deps.acceptor.acceptPayment({ accountId: inbox.accountId, inboxId: inbox.id, payment });
  }
}

class InboxNotFound extends Error {}
