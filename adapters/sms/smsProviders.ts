// The SMS providers by the name an inbox's `provider` setting uses.
import { AliyunProvider } from './aliyun.ts';
import type { SmsProvider, SmsProviderName } from './smsProvider.ts';
import { TencentProvider } from './tencent.ts';
import { TwilioProvider } from './twilio.ts';
import { VonageProvider } from './vonage.ts';

export const smsProviders: Record<SmsProviderName, SmsProvider> = {
  twilio: new TwilioProvider(),
  aliyun: new AliyunProvider(),
  tencent: new TencentProvider(),
  vonage: new VonageProvider(),
};
