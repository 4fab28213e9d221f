// Signs WeChat Pay API v3 merchant requests (the Authorization header) with wechatpay-node-v3.
// Only its signing is used: its certificate download skips the GCM tag check and cannot be pointed
// at another base URL, so fetching and decrypting stay ours.
import Pay from 'wechatpay-node-v3';

class SigningPay extends Pay {
  /** `WECHATPAY2-SHA256-RSA2048 mchid=…,nonce_str=…,timestamp=…,serial_no=…,signature=…` for a path with its query. */
  authorization(method: string, pathWithQuery: string, body?: Record<string, unknown>): string {
    return this.buildAuthorization(method, pathWithQuery, body);
  }
}

export class MerchantRequestSigner {
  private readonly pay: SigningPay;

  constructor(credentials: { mchId: string; serialNo: string; privateKey: string }) {
    // The library insists on a merchant certificate it only reads to find the serial, which we give it.
    this.pay = new SigningPay({
      appid: '', mchid: credentials.mchId, serial_no: credentials.serialNo,
      publicKey: Buffer.from('unused: the serial is given'), privateKey: Buffer.from(credentials.privateKey),
    });
  }

  authorization(method: 'GET' | 'POST', pathWithQuery: string, body?: Record<string, unknown>): string {
    return this.pay.authorization(method, pathWithQuery, body);
  }
}
