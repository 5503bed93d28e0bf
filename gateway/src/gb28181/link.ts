/**
 * What the admin routes ask of the live GB/T 28181 service (the SIP side): queries to a registered
 * device. The service implements it; without one the routes answer 503.
 */
export interface GbLink {
  /** Query Catalog and wait for the answer to be applied; the device's channel count afterwards. */
  queryCatalog(deviceId: string): Promise<{ channels: number }>;
  /** DeviceInfo: the device's answer as element name → text (DeviceName, Manufacturer, Model, Firmware, …). */
  queryDeviceInfo(deviceId: string): Promise<Record<string, string>>;
  /** DeviceStatus: the device's answer as element name → text (Online, Status, Encode, Record, DeviceTime, …). */
  queryDeviceStatus(deviceId: string): Promise<Record<string, string>>;
}
