/**
 * A failure in one sentence for the person who caused it, in the page's language: who holds the
 * lock, who changed the tile, which field was wrong. The gateway sends a GW_ERR_* code, a reason and
 * parameters beside its English message (docs/errors.md); the sentence is made here from those. A
 * page adds only the cases it says differently (the console's conflicts, the admin's network failure).
 */
import type { TileStatus, WallView } from '../../../gateway/src/control/model.js';
import { ApiError } from './api.js';
import { ControlError } from './control.js';
import { addStrings, hasString, language, t } from './i18n.js';

addStrings({
  'error.conflict': ['Tile {tile} was changed by {by} a moment ago.', '窗口 {tile} 刚被 {by} 修改。'],
  'error.conflictAny': ['Someone else changed the wall a moment ago; try again.', '大屏刚被他人修改，请重试。'],
  'error.disconnected': ['Not connected to the gateway; try again once the connection is back.', '与网关的连接已断开，恢复后请重试。'],
  'error.timeout': ['The gateway did not answer in time; try again.', '网关未及时响应，请重试。'],
  'error.network': ['The gateway cannot be reached.', '无法连接网关。'],
  'error.withDetail': ['{text} ({detail})', '{text}（{detail}）'],
  'error.field': ['{field}: {text}', '{field}：{text}'],
  'error.list': ['{first}; {rest}', '{first}；{rest}'],
});

/**
 * Every GW_ERR_* code in both languages: `err.<code>` for any error of that code, `err.<code>.<reason>`
 * for a reason the gateway names (gateway/src/errors.ts, errorReasons), filled from its parameters.
 * `{message}` is the gateway's English message, for the few general sentences that need its specifics.
 */
addStrings({
  'err.GW_ERR_VALIDATION': ['The input was refused: {message}', '输入有误：{message}'],
  'err.GW_ERR_BAD_MESSAGE': ['The gateway did not understand the request: {message}', '网关无法识别该请求：{message}'],
  'err.GW_ERR_BAD_CURSOR': ['The list changed; load it again from the start.', '列表已变化，请从头重新加载。'],
  'err.GW_ERR_UNAUTHENTICATED': ['Sign in again.', '请重新登录。'],
  'err.GW_ERR_LOGIN_FAILED': ['The user name or password is wrong.', '用户名或密码错误。'],
  'err.GW_ERR_FORBIDDEN': ['Not allowed: {message}', '不允许执行此操作：{message}'],
  'err.GW_ERR_FORBIDDEN.permission': ['Your role does not allow this ({permission}).', '您的角色无权执行此操作（{permission}）。'],
  'err.GW_ERR_FORBIDDEN.scopeTop': ['The top department of your own scope cannot be moved or deleted by you.', '您不能移动或删除自己管辖范围的顶级部门。'],
  'err.GW_ERR_FORBIDDEN.address': ["The camera's address is not allowed by the gateway's network policy.", '网关的网络策略不允许访问该摄像机地址。'],
  'err.GW_ERR_FORBIDDEN.notVehicleChannel': ['This camera is not channel {channel} of vehicle {vehicle}, so it cannot play that vehicle’s video.', '该摄像机不是车辆 {vehicle} 的通道 {channel}，不能播放该车辆的视频。'],
  'err.GW_ERR_NOT_FOUND': ['Not found, or not in your scope.', '未找到，或不在您的管辖范围内。'],
  'err.GW_ERR_CONFLICT': ['This conflicts with the current state: {message}', '与当前状态冲突：{message}'],
  'err.GW_ERR_CONFLICT.taken': ['"{id}" already exists.', '“{id}”已存在。'],
  'err.GW_ERR_CONFLICT.disabled': ['Camera {camera} is disabled.', '摄像机 {camera} 已停用。'],
  'err.GW_ERR_CONFLICT.notPush': ['Camera {camera} is pulled by the gateway, not pushed to it.', '摄像机 {camera} 由网关拉流，不是推流接入。'],
  'err.GW_ERR_CONFLICT.ingestOff': ["The gateway's RTMP ingest is off.", '网关的 RTMP 推流接入未开启。'],
  'err.GW_ERR_CONFLICT.departmentInUse': ['Department {department} is still in use (departments, cameras, walls, vehicles or users below it); change those first.', '部门 {department} 仍在使用中（下级部门、摄像机、大屏、车辆或用户），请先处理。'],
  'err.GW_ERR_CONFLICT.planActive': ['Plan "{plan}" of priority {priority} is active; only a plan of higher priority can pre-empt it.', '预案“{plan}”（优先级 {priority}）正在执行，只有更高优先级的预案才能抢占。'],
  'err.GW_ERR_CONFLICT.planInUse': ['This plan is active; revert it first.', '该预案正在执行，请先撤销。'],
  'err.GW_ERR_CONFLICT.nameTaken': ['The wall already has one named "{name}".', '该大屏已有名为“{name}”的同类项。'],
  'err.GW_ERR_CONFLICT.noPlan': ['No emergency plan is active on this wall.', '该大屏没有正在执行的应急预案。'],
  'err.GW_ERR_CONFLICT.popupEnded': ['Pop-up {popup} has already ended.', '弹窗 {popup} 已结束。'],
  'err.GW_ERR_CONFLICT.alarmClosed': ['Alarm {alarm} was closed by {by}.', '告警 {alarm} 已被 {by} 关闭。'],
  'err.GW_ERR_CONFLICT.alarmClosing': ['Alarm {alarm} is being closed.', '告警 {alarm} 正在关闭。'],
  'err.GW_ERR_CONFLICT.alarmAcknowledged': ['Alarm {alarm} was acknowledged by {by}.', '告警 {alarm} 已被 {by} 确认。'],
  'err.GW_ERR_CONFLICT.vehicleChannel': ["Camera {camera} is a vehicle's channel; take it off the vehicle first.", '摄像机 {camera} 是车辆的通道，请先从车辆上移除。'],
  'err.GW_ERR_CONFLICT.plateTaken': ['Plate {plate} is registered to another vehicle.', '车牌 {plate} 已登记在其他车辆上。'],
  'err.GW_ERR_CONFLICT.simTaken': ['SIM {sim} is the SIM of another vehicle.', 'SIM 卡号 {sim} 已登记在其他车辆上。'],
  'err.GW_ERR_VERSION_CONFLICT': ['Someone else changed this a moment ago; reload and try again.', '该对象刚被他人修改，请刷新后重试。'],
  'err.GW_ERR_LOCKED': ['Locked by another operator.', '已被其他操作员锁定。'],
  'err.GW_ERR_LOCKED.tile': ['Tile {tile} is locked by {user}.', '窗口 {tile} 已被 {user} 锁定。'],
  'err.GW_ERR_LOCKED.popup': ['Tile {tile} shows an alarm pop-up; dismiss it first.', '窗口 {tile} 正在显示告警弹窗，请先关闭弹窗。'],
  'err.GW_ERR_LOCKED.ptz': ['{user} is steering camera {camera}; a supervisor may take over.', '{user} 正在控制摄像机 {camera} 的云台；主管可以接管。'],
  'err.GW_ERR_PRECONDITION_REQUIRED': ['The page sent a change without the version it read; reload and try again.', '页面提交修改时未带版本号，请刷新后重试。'],
  'err.GW_ERR_RATE_LIMITED': ['Too many actions at once; wait a moment.', '操作过于频繁，请稍候。'],
  'err.GW_ERR_RATE_LIMITED.messages': ['Too many actions at once (over {perSecond} a second); wait a moment.', '操作过于频繁（每秒超过 {perSecond} 次），请稍候。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE': ['Too large for the gateway.', '内容超出网关的大小限制。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.body': ['The request is over {limit} bytes.', '请求超过 {limit} 字节。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.importBytes': ['The file is over {limit} bytes; split it.', '文件超过 {limit} 字节，请拆分。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.importRows': ['The file has more than {limit} rows; split it.', '文件超过 {limit} 行，请拆分。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.csvRowChars': ['Line {line} is longer than {limit} characters; nothing was imported.', '第 {line} 行超过 {limit} 个字符，未导入任何内容。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.csvRowCells': ['Line {line} has more than {limit} cells; nothing was imported.', '第 {line} 行超过 {limit} 列，未导入任何内容。'],
  'err.GW_ERR_PAYLOAD_TOO_LARGE.message': ['The action is over {limit} bytes.', '操作内容超过 {limit} 字节。'],
  'err.GW_ERR_UNSUPPORTED_MEDIA_TYPE': ['The gateway does not take this kind of content: {message}', '网关不接受该内容类型：{message}'],
  'err.GW_ERR_UNSUPPORTED': ['The source cannot do this.', '该视频源不支持此操作。'],
  'err.GW_ERR_UNSUPPORTED.ptz': ['PTZ is not supported for this source (only GB/T 28181 channels).', '该视频源不支持云台控制（仅支持国标通道）。'],
  'err.GW_ERR_IMPORT_REJECTED': ['The import was refused; nothing was imported.', '导入被拒绝，未导入任何内容。'],
  'err.GW_ERR_IMPORT_REJECTED.rows': ['{rejected} of {rows} rows were refused; nothing was imported.', '{rows} 行中有 {rejected} 行有误，未导入任何内容。'],
  'err.GW_ERR_LOGIN_LOCKED': ['Too many failed sign-ins; wait a while.', '登录失败次数过多，请稍后再试。'],
  'err.GW_ERR_LOGIN_LOCKED.wait': ['Too many failed sign-ins; try again in {retryAfterSec} s.', '登录失败次数过多，请 {retryAfterSec} 秒后再试。'],
  'err.GW_ERR_USER_QUOTA': ['You have as many viewings open as you may; close one first.', '您打开的视频数已达上限，请先关闭一个。'],
  'err.GW_ERR_USER_QUOTA.viewings': ['You already have {limit} viewings open; close one first.', '您已打开 {limit} 路视频，请先关闭一路。'],
  'err.GW_ERR_INTERNAL': ['A fault in the gateway: {message}', '网关内部错误：{message}'],
  'err.GW_ERR_INTERNAL.request': ['A fault in the gateway; quote request id {requestId} to the operators.', '网关内部错误，请向运维人员提供请求编号 {requestId}。'],
  'err.GW_ERR_CAMERA_UNREACHABLE': ['The camera cannot be reached.', '无法连接摄像机。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.unreachable': ['The camera cannot be reached.', '无法连接摄像机。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.noStream': ['The camera has no stream at this path.', '摄像机在该路径下没有视频流。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.stalled': ['The camera sent no video for {ms} ms.', '摄像机 {ms} 毫秒内未发送视频。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.closed': ['The camera closed the stream.', '摄像机关闭了视频流。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.endedEarly': ['The camera ended the stream before any video.', '摄像机在发送视频前结束了视频流。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.exited': ['The pull from the camera failed.', '从摄像机拉流失败。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.noPublisher': ['Nobody is publishing to this push camera.', '该推流摄像机当前没有推流。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.lookup': ["The camera's address cannot be looked up.", '无法解析摄像机地址。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.deviceOffline': ['The GB/T 28181 device {device} is offline or not registered.', '国标设备 {device} 离线或未注册。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.deviceTimeout': ['The GB/T 28181 device {device} did not answer within {ms} ms.', '国标设备 {device} 在 {ms} 毫秒内未应答。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.inviteTimeout': ['The device did not answer the INVITE within {ms} ms.', '设备在 {ms} 毫秒内未应答 INVITE。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.inviteRefused': ['The device refused the video: {status} {phrase}.', '设备拒绝点播：{status} {phrase}。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.noRtp': ['No RTP on port {port} within {ms} ms (the device was told to send to {address}: check routing/NAT).', '端口 {port} 在 {ms} 毫秒内未收到 RTP（已通知设备发往 {address}，请检查路由/NAT）。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.wrongSsrc': ['RTP arrived with SSRC {ssrc}, expected {expected}.', '收到的 RTP 的 SSRC 为 {ssrc}，应为 {expected}。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.noVideo': ['RTP arrived but held no decodable video.', '收到 RTP，但其中没有可解码的视频。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.deviceBye': ['The device ended the stream.', '设备结束了视频流。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.mediaEnded': ['The device reported the end of the media.', '设备报告媒体流已结束。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.vehicleOffline': ['Vehicle offline since {since}.', '车辆自 {since} 起离线。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.vehicleNeverOnline': ["The vehicle's terminal has not connected since the gateway started.", '网关启动以来车载终端尚未上线。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.terminalTimeout': ['The terminal did not answer the video request within {ms} ms.', '终端在 {ms} 毫秒内未应答视频请求。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.terminalRefused': ['The terminal refused the video request (result {result}).', '终端拒绝了视频请求（结果 {result}）。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.noMediaLink': ['The terminal did not open the video link within {ms} ms.', '终端在 {ms} 毫秒内未建立视频链路。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.linkNoVideo': ['The video link opened but held no decodable video.', '视频链路已建立，但没有可解码的视频。'],
  'err.GW_ERR_CAMERA_UNREACHABLE.mediaLinkClosed': ['The terminal closed the video link.', '终端关闭了视频链路。'],
  'err.GW_ERR_CAMERA_AUTH': ['The camera refused the stored user name or password.', '摄像机拒绝了保存的用户名或密码。'],
  'err.GW_ERR_CAMERA_NO_VIDEO': ["The camera's stream has no video.", '摄像机的视频流中没有视频。'],
  'err.GW_ERR_CODEC_UNSUPPORTED': ["The camera's video codec cannot be played.", '无法播放该摄像机的视频编码。'],
  'err.GW_ERR_CODEC_UNSUPPORTED.decoder': ["The camera's video codec is not supported.", '不支持该摄像机的视频编码。'],
  'err.GW_ERR_CODEC_UNSUPPORTED.h265Busy': ['The camera sends H.265 and all {limit} transcode slots are busy.', '摄像机为 H.265 编码，且 {limit} 路转码均已占用。'],
  'err.GW_ERR_UNAVAILABLE': ['The gateway is shutting down; try again shortly.', '网关正在关闭，请稍后重试。'],
  'err.GW_ERR_UNAVAILABLE.jt1078Off': ['JT/T 1078 live video is off (jt1078.enabled, jt808.enabled), so the terminal cannot be asked.', 'JT/T 1078 实时视频未开启（jt1078.enabled、jt808.enabled），无法向终端请求视频。'],
  'err.GW_ERR_UNAVAILABLE.database': ['The database ({address}) cannot be reached; nothing was saved. Try again in a moment.', '无法连接数据库（{address}），未保存任何内容。请稍后重试。'],
  'err.GW_ERR_UNAVAILABLE.gb28181Off': ['The GB/T 28181 service is not running (gb28181.enabled), so the device cannot be asked.', '国标（GB/T 28181）服务未运行（gb28181.enabled），无法询问设备。'],
  'err.GW_ERR_CAPACITY': ['The gateway is at its limit: {message}', '网关已达上限：{message}'],
  'err.GW_ERR_CAPACITY.sessions': ['The gateway is already pulling its maximum of {limit} cameras.', '网关拉流路数已达上限（{limit} 路）。'],
  'err.GW_ERR_CAPACITY.viewers': ['The gateway is already serving its maximum of {limit} viewers.', '网关观看人数已达上限（{limit} 个）。'],
  'err.GW_ERR_CAPACITY.departmentPulls': ['Department {department} is already pulling its maximum of {limit} cameras.', '部门 {department} 拉流路数已达上限（{limit} 路）。'],
  'err.GW_ERR_CAPACITY.transcode': ['This H.265 camera needs a transcode and all {limit} are busy.', '该 H.265 摄像机需要转码，且 {limit} 路转码均已占用。'],
  'err.GW_ERR_CAPACITY.webrtcPeers': ['The gateway is already serving its maximum of {limit} WebRTC viewers.', '网关 WebRTC 观看数已达上限（{limit} 个）。'],
  'err.GW_ERR_CAPACITY.subscriptions': ['A connection may follow at most {limit} walls.', '一个连接最多关注 {limit} 个大屏。'],
  'err.GW_ERR_CAPACITY.snapshotDecodes': ['The gateway is already decoding its maximum of {limit} pictures, with more waiting; try again shortly.', '网关正在解码的抓拍已达上限（{limit} 张）且有排队，请稍后重试。'],
  'err.GW_ERR_CAPACITY.alarmPictures': ['More than {limit} alarm pictures were waiting.', '等待抓拍的告警图片超过 {limit} 张。'],
  'err.GW_ERR_IMPORT_BUSY': ['Other imports are running; send this one when one has finished.', '其他导入正在进行，请稍后再提交。'],
  'err.GW_ERR_IMPORT_BUSY.imports': ['{limit} imports are already running; send this one when one has finished.', '已有 {limit} 个导入正在进行，请待其完成后再提交。'],
  'err.GW_ERR_STREAM_CLOSED': ['The stream was stopped.', '视频流已停止。'],
  'err.GW_ERR_STREAM_TIMEOUT': ['No video arrived in time.', '未能及时收到视频。'],
  'err.GW_ERR_STREAM_TIMEOUT.start': ['No video within {ms} ms: the camera accepted the connection but sent nothing, or never answered.', '{ms} 毫秒内无视频：摄像机接受了连接但未发送数据，或没有响应。'],
  'err.GW_ERR_STREAM_TIMEOUT.hls': ['The stream is live but no HLS segment was written in time.', '视频流已在线，但未能及时生成 HLS 分片。'],
});

/**
 * A refused field's rule (gateway/src/errors.ts, issueRules), shown under the field; `{field}` is
 * not part of it, the form or the list puts the field beside it.
 */
addStrings({
  'rule.required': ['is required', '为必填项'],
  'rule.type': ['expected a value of type {type}', '应为 {type} 类型的值'],
  'rule.minLength': ['must be at least {limit} characters', '至少 {limit} 个字符'],
  'rule.maxLength': ['must be at most {limit} characters', '最多 {limit} 个字符'],
  'rule.minimum': ['must be at least {limit}', '不能小于 {limit}'],
  'rule.maximum': ['must be at most {limit}', '不能大于 {limit}'],
  'rule.range': ['must be between {min} and {max}', '应在 {min} 到 {max} 之间'],
  'rule.lengthRange': ['must be {min} to {max} characters', '应为 {min} 到 {max} 个字符'],
  'rule.minItems': ['needs at least {limit} entries', '至少需要 {limit} 项'],
  'rule.maxItems': ['takes at most {limit} entries', '最多 {limit} 项'],
  'rule.enum': ['expected one of {allowed}', '应为以下之一：{allowed}'],
  'rule.pattern': ['is not in the expected form', '格式不正确'],
  'rule.format': ['expected a valid {format}', '应为有效的 {format}'],
  'rule.unknownField': ['is not a known field', '不是可识别的字段'],
  'rule.controlChars': ['must not contain control characters', '不能包含控制字符'],
  'rule.url': ['is not a usable camera URL', '不是可用的摄像机地址'],
  'rule.urlScheme': ['must start with one of {allowed}', '必须以下列之一开头：{allowed}'],
  'rule.latLon': ['latitude and longitude go together: give both or neither', '经度和纬度须同时填写或同时留空'],
  'rule.unchangeable': ['cannot be changed', '不可修改'],
  'rule.wrongPassword': ['is wrong', '不正确'],
  'rule.unknownDepartment': ['unknown department "{department}"', '部门“{department}”不存在'],
  'rule.duplicate': ['is given twice (first at line {line})', '重复（首次出现在第 {line} 行）'],
  'rule.taken': ['is already registered', '已被登记'],
  // An issue the gateway gives no rule for: its English message, introduced in the page's language.
  'rule.other': ['{message}', '不符合要求：{message}'],
});

type Params = Record<string, string | number>;

/** What the gateway says about one failure: the code, its English message and the parameters. */
export interface CodedFailure {
  code: string;
  message: string;
  params?: Params | null;
}

/**
 * The sentence for a coded failure: its reason's own, else its code's, else (a code this page does
 * not know) the gateway's message. A `detail` (ffmpeg's words) follows in brackets as it is.
 */
export function codeText({ code, message, params }: CodedFailure): string {
  const p = params ?? {};
  const reasonKey = `err.${code}.${p.reason ?? ''}`;
  const key = p.reason !== undefined && hasString(reasonKey) ? reasonKey : `err.${code}`;
  if (!hasString(key)) return message;
  const text = t(key, { ...p, ...timeParams(p), message });
  if (p.detail === undefined || p.detail === '') return text;
  // The detail goes inside the sentence: "The camera cannot be reached (Connection refused)."
  const end = /[.。]$/.exec(text)?.[0] ?? '';
  return t('error.withDetail', { text: text.slice(0, text.length - end.length), detail: p.detail }) + end;
}

/**
 * Times the gateway sends as ms since the epoch (a vehicle offline `since`), in the viewer's own
 * clock: "14:02" today, with the date before that.
 */
function timeParams(p: Params): Params {
  const since = p.since;
  if (typeof since !== 'number') return {};
  const at = new Date(since);
  const locale = language() === 'zh' ? 'zh-CN' : 'en-GB';
  const time = at.toLocaleTimeString(locale, { hour: '2-digit', minute: '2-digit', hour12: false });
  return { since: at.toDateString() === new Date().toDateString() ? time : `${at.toLocaleDateString(locale)} ${time}` };
}

export interface IssueLike {
  field: string;
  message: string;
  rule?: string;
  params?: Params;
}

/**
 * One refused field's problem, without the field's name. The gateway words each field's problem in
 * English itself, more closely than a rule can ("expected 2-64 letters, digits…"), so an English
 * page shows that; other languages say the rule with its numbers.
 */
export function issueText(issue: IssueLike): string {
  if (language() === 'en' && issue.message) return issue.message;
  const key = issue.rule ? `rule.${issue.rule}` : '';
  return key && hasString(key) ? t(key, { ...issue.params }) : t('rule.other', { message: issue.message });
}

/** Refused fields as one line: "name: is required; url: …". */
export function issuesText(issues: unknown): string | null {
  if (!Array.isArray(issues) || issues.length === 0) return null;
  return (issues as IssueLike[]).map((i) => t('error.field', { field: i.field, text: issueText(i) })).reduce((first, rest) => t('error.list', { first, rest }));
}

/** The code, message and parameters of an error body, from REST, the control WebSocket or a WHEP answer. */
export function failureOf(body: Record<string, unknown>, fallback: string): CodedFailure {
  return {
    code: typeof body.code === 'string' ? body.code : '',
    message: typeof body.message === 'string' ? body.message : fallback,
    params: body.params && typeof body.params === 'object' ? (body.params as Params) : null,
  };
}

/** Why the gateway says a tile's camera is down, in the page's language, to go inside a badge's sentence (no full stop). */
export function statusReason(status: Pick<TileStatus, 'reason' | 'code' | 'params'>): string {
  if (!status.code) return status.reason ?? '';
  return codeText({ code: status.code, message: status.reason ?? '', params: status.params }).replace(/[.。]$/, '');
}

/** A camera's health as the registry keeps it (GET /api/sources): the English message, and its code and parameters. */
export interface StoredHealth {
  error: string | null;
  /** null for a camera online, or whose failure was stored before the gateway kept codes. */
  code: string | null;
  params: Params | null;
}

/** Why a camera is offline, in the page's language; the stored English message when there is no code to word it from. */
export function healthReason(health: StoredHealth): string | null {
  if (!health.code) return health.error;
  return codeText({ code: health.code, message: health.error ?? '', params: health.params });
}

export interface ErrorContext {
  /** The tile the action was about, for a conflict or lock that does not name one. */
  tileId?: string;
}

export function errorText(e: unknown, ctx: ErrorContext = {}): string {
  const { tileId } = ctx;
  if (e instanceof ControlError) {
    const body = e.body;
    switch (e.code) {
      case 'GW_ERR_VERSION_CONFLICT': {
        const tile = tileId ? (body.current as WallView | undefined)?.tiles[tileId] : undefined;
        return tile ? t('error.conflict', { tile: tile.id, by: tile.by }) : t('error.conflictAny');
      }
      case 'GW_ERR_VALIDATION':
        return issuesText(body.issues) ?? codeText(failureOf(body, e.message));
      case 'DISCONNECTED':
        return t('error.disconnected');
      case 'TIMEOUT':
        return t('error.timeout');
    }
    return codeText(failureOf(body, e.message));
  }
  if (e instanceof ApiError) {
    if (e.status === 0) return t('error.network');
    return issuesText(e.issues) ?? codeText(failureOf(e.body, e.message));
  }
  return (e as Error)?.message ?? String(e);
}
