import { Type, type Static, type TSchema } from '@sinclair/typebox';

/**
 * The one description of wallgate's configuration. Defaults live here, in code;
 * config/default.json is a copy of them that a test keeps equal.
 * Objects are closed (additionalProperties: false) so a mistyped key stops the start.
 */
const obj = <T extends Record<string, TSchema>>(props: T, description: string) =>
  Type.Object(props, { additionalProperties: false, default: {}, description });

const port = (def: number, description: string) =>
  Type.Integer({ minimum: 0, maximum: 65535, default: def, description });

export const configSchema = obj(
  {
    dataDir: Type.String({
      minLength: 1,
      default: './data',
      description: 'Directory for the SQLite store, generated secrets and stream scratch files.',
    }),
    server: obj(
      {
        host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the HTTP server binds.' }),
        port: port(8080, 'HTTP port; 0 picks a free one.'),
        trustProxy: Type.Boolean({
          default: false,
          description: 'Take the client address from X-Forwarded-For (only behind a trusted reverse proxy).',
        }),
        bodyLimitBytes: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'Largest JSON body.' }),
        shutdownGraceMs: Type.Integer({
          minimum: 100,
          maximum: 9_000,
          default: 8_000,
          description: 'How long SIGTERM waits for in-flight requests before closing them.',
        }),
      },
      'HTTP server.',
    ),
    log: obj(
      {
        level: Type.Union(
          ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
          { default: 'info', description: 'Log level.' },
        ),
      },
      'Logging.',
    ),
    secrets: obj(
      {
        file: Type.String({
          default: '',
          description: 'File holding generated keys (mode 0600); empty means <dataDir>/secrets.json.',
        }),
        tokenKey: Type.String({
          default: '',
          description: 'Token signing key, base64 of at least 32 bytes; empty means read or generate the secrets file.',
        }),
        credentialKey: Type.String({
          default: '',
          description: 'Camera credential encryption key, base64 of 32 bytes; empty means read or generate the secrets file.',
        }),
      },
      'Keys. Prefer WALLGATE_SECRETS_* environment variables or the generated file over putting keys in a config file.',
    ),
    auth: obj(
      {
        tokenTtlSec: Type.Integer({ minimum: 60, maximum: 604_800, default: 43_200, description: 'Login token lifetime.' }),
        passwordMinLength: Type.Integer({ minimum: 8, maximum: 128, default: 10, description: 'Shortest user password.' }),
        loginMaxFailures: Type.Integer({
          minimum: 1,
          default: 5,
          description: 'Failed logins for one user name before it is locked for loginLockoutSec.',
        }),
        loginLockoutSec: Type.Integer({ minimum: 1, default: 60, description: 'Lockout after too many failed logins.' }),
        bootstrapAdmin: Type.String({
          minLength: 1,
          default: 'admin',
          description: 'Name of the admin created, with a random password printed once, on a first start.',
        }),
      },
      'Accounts and tokens.',
    ),
    registry: obj(
      {
        networks: obj(
          {
            allow: Type.Array(Type.String(), {
              default: [],
              description: 'CIDRs camera hosts may be in; empty allows every network not denied.',
            }),
            deny: Type.Array(Type.String(), {
              default: ['0.0.0.0/8', '::/128', '169.254.0.0/16', 'fe80::/10', '224.0.0.0/4', 'ff00::/8'],
              description: 'CIDRs camera hosts may never be in ("this host" addresses; link-local covers cloud metadata services).',
            }),
          },
          'Networks a camera URL may point at, checked at registration and again when a stream resolves its host.',
        ),
        resolveTimeoutMs: Type.Integer({
          minimum: 50,
          maximum: 10_000,
          default: 1_000,
          description: 'DNS lookup budget when a network allow-list needs a host name resolved.',
        }),
        importMaxRows: Type.Integer({ minimum: 1, default: 200_000, description: 'Most rows one import request may carry.' }),
        importMaxBytes: Type.Integer({ minimum: 1024, default: 268_435_456, description: 'Largest import body.' }),
        importMaxConcurrent: Type.Integer({
          minimum: 1,
          maximum: 16,
          default: 2,
          description: 'Imports (of sources and vehicles together) that may run at once; one more is refused with GW_ERR_IMPORT_BUSY. Each holds its rows in memory until its one transaction.',
        }),
        pageSizeMax: Type.Integer({ minimum: 1, maximum: 5_000, default: 500, description: 'Largest list page.' }),
      },
      'Camera source registry.',
    ),
    streams: obj(
      {
        ffmpegPath: Type.String({ minLength: 1, default: 'ffmpeg', description: 'The ffmpeg binary (Debian: apt-get install ffmpeg).' }),
        closeAfterMs: Type.Integer({
          minimum: 0,
          maximum: 3_600_000,
          default: 10_000,
          description: 'How long a pull lingers after its last viewer leaves, so a viewer coming back (a tour, a reload) joins at once.',
        }),
        startTimeoutMs: Type.Integer({
          minimum: 500,
          maximum: 120_000,
          default: 10_000,
          description: 'How long viewers wait for the first video of a starting pull before they get an error.',
        }),
        ioTimeoutMs: Type.Integer({
          minimum: 500,
          maximum: 120_000,
          default: 5_000,
          description: "ffmpeg's socket timeout towards the camera (-timeout for RTSP, -rw_timeout otherwise).",
        }),
        watchdogMs: Type.Integer({
          minimum: 500,
          maximum: 120_000,
          default: 5_000,
          description: 'A live pull that delivers no video for this long is killed and retried.',
        }),
        retry: obj(
          {
            initialMs: Type.Integer({ minimum: 50, default: 1_000, description: 'First retry delay after a watched camera drops.' }),
            maxMs: Type.Integer({ minimum: 100, default: 30_000, description: 'Longest retry delay; the delay doubles up to it and resets on the first frame.' }),
          },
          'Retries of a camera that drops while watched (a camera nobody watches is never retried).',
        ),
        killGraceMs: Type.Integer({ minimum: 100, maximum: 30_000, default: 2_000, description: 'SIGTERM to SIGKILL delay when stopping ffmpeg.' }),
        rtspTransport: Type.Union([Type.Literal('tcp'), Type.Literal('udp')], {
          default: 'tcp',
          description: 'RTSP media transport: tcp (interleaved, survives NAT and loss) or udp.',
        }),
        audio: Type.Union([Type.Literal('off'), Type.Literal('aac')], {
          default: 'off',
          description: 'Audio in the outputs: off, or transcoded to AAC mono (cameras often send G.711, which HLS cannot carry).',
        }),
        transcode: obj(
          {
            maxConcurrent: Type.Integer({ minimum: 0, default: 2, description: 'H.265 cameras transcoded to H.264 at once; the next one gets 503.' }),
            preset: Type.Union(
              ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast', 'medium'].map((p) => Type.Literal(p)),
              { default: 'veryfast', description: 'libx264 preset of the transcode.' },
            ),
            height: Type.Integer({ minimum: 0, maximum: 4320, default: 720, description: 'Largest output height (0 keeps the source size).' }),
            bitrateKbps: Type.Integer({ minimum: 100, maximum: 50_000, default: 2_000, description: 'Transcode bit rate.' }),
          },
          'H.265 to H.264 for browsers.',
        ),
        hls: obj(
          {
            segmentSec: Type.Number({
              minimum: 0.5,
              maximum: 10,
              default: 0.9,
              description: 'Target segment length; segments cut at keyframes, and 0.9 keeps a 1 s GOP at one GOP per segment.',
            }),
            listSize: Type.Integer({ minimum: 2, maximum: 30, default: 5, description: 'Segments in the live playlist.' }),
            viewerTimeoutMs: Type.Integer({
              minimum: 1_000,
              default: 15_000,
              description: 'An HLS viewer that fetches nothing for this long stops counting as a viewer.',
            }),
          },
          'HLS output.',
        ),
        gopCache: obj(
          {
            maxBytesPerSession: Type.Integer({
              minimum: 0,
              default: 8_388_608,
              description:
                "Largest GOP one camera's cache holds (an 8 Mbit/s camera with a 4 s GOP needs about 4.5 MB). A longer GOP is dropped, and viewers joining then wait for the next keyframe.",
            }),
            maxBytesTotal: Type.Integer({
              minimum: 0,
              default: 268_435_456,
              description: 'Bytes all GOP caches hold together. A GOP that would pass it is dropped, as above.',
            }),
          },
          'The last GOP of each camera, kept once and read by every output so a joining viewer starts on a keyframe at once.',
        ),
        flv: obj(
          {
            maxBufferedBytes: Type.Integer({
              minimum: 65_536,
              default: 8_388_608,
              description: 'A WS-FLV or HTTP-FLV viewer this far behind is disconnected instead of growing memory.',
            }),
            maxBufferedBytesTotal: Type.Integer({
              minimum: 65_536,
              default: 67_108_864,
              description: 'Bytes queued for all FLV viewers together; past it the viewers furthest behind are disconnected first.',
            }),
            rtmpPort: port(1935, 'RTMP ingest port for push sources (drones, vehicle platforms); 0 picks a free one.'),
            rtmpHost: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the RTMP ingest binds.' }),
            rtmpEnabled: Type.Boolean({ default: true, description: 'Accept RTMP push sources.' }),
          },
          'WS-FLV / HTTP-FLV output and RTMP ingest (node-media-server).',
        ),
        webrtc: obj(
          {
            enabled: Type.Boolean({ default: true, description: 'Serve WebRTC viewers over WHEP (POST /whep/<camera>).' }),
            keyframeCache: Type.Boolean({
              default: true,
              description: 'Start a joining viewer on the cached GOP, so video shows at once instead of after the next keyframe.',
            }),
            maxPeers: Type.Integer({ minimum: 1, default: 1_000, description: 'WebRTC viewers over all cameras (503 past it).' }),
            maxPeersPerCamera: Type.Integer({ minimum: 1, default: 200, description: "WebRTC viewers of one camera's stream (503 past it)." }),
            connectTimeoutMs: Type.Integer({
              minimum: 1_000,
              default: 10_000,
              description: 'A peer whose ICE and DTLS have not completed this long after its offer is dropped.',
            }),
            idleTimeoutMs: Type.Integer({
              minimum: 1_000,
              default: 10_000,
              description: 'A connected peer that sends no RTCP or ICE traffic for this long has vanished and is dropped.',
            }),
            maxOfferBytes: Type.Integer({ minimum: 1_024, maximum: 1_048_576, default: 32_768, description: 'Largest SDP offer.' }),
            bindAddress: Type.String({
              default: '',
              description: 'Local IPv4 address the media sockets bind; empty binds all addresses.',
            }),
            announcedAddresses: Type.Array(Type.String({ minLength: 1 }), {
              default: [],
              maxItems: 8,
              description:
                'Addresses put in the answer as host candidates (public or NAT addresses). Empty announces the address the WHEP request arrived on, never every interface.',
            }),
            portMin: port(0, 'Lowest UDP port for media (with portMax; 0 lets the system pick). One port per viewer.'),
            portMax: port(0, 'Highest UDP port for media.'),
            iceServers: Type.Array(
              obj(
                {
                  urls: Type.String({ pattern: '^(stun|turn|turns):', description: 'stun:host:port or turn:host:port?transport=udp' }),
                  username: Type.Optional(Type.String()),
                  credential: Type.Optional(Type.String()),
                },
                'A STUN or TURN server.',
              ),
              { default: [], maxItems: 8, description: 'STUN/TURN servers, used by the gateway and offered to WHEP clients in Link headers and to the browser pages with each viewing.' },
            ),
          },
          'WebRTC output (WHEP, RFC 9725).',
        ),
        tokenTtlSec: Type.Integer({
          minimum: 10,
          maximum: 3_600,
          default: 120,
          description: 'A stream URL must be first used within this long; the viewing then lasts while it is fetched.',
        }),
        limits: obj(
          {
            sessions: Type.Integer({ minimum: 1, default: 300, description: 'Concurrent camera pulls.' }),
            viewers: Type.Integer({ minimum: 1, default: 3_000, description: 'Concurrent viewers over all cameras.' }),
            viewersPerUser: Type.Integer({ minimum: 1, default: 100, description: "One user's concurrent viewings (429 past it)." }),
            departmentPulls: Type.Record(Type.String(), Type.Integer({ minimum: 0 }), {
              default: {},
              description: 'Concurrent pulls per department subtree, e.g. {"traffic": 50}.',
            }),
          },
          'Admission: a request over a cap is refused before any process starts.',
        ),
        snapshots: obj(
          {
            maxConcurrentDecodes: Type.Integer({
              minimum: 1,
              maximum: 64,
              default: 2,
              description: 'Keyframes decoded to JPEG at once (one ffmpeg each); more requests wait in the queue.',
            }),
            maxQueuedDecodes: Type.Integer({
              minimum: 0,
              default: 64,
              description: 'Decodes waiting for a free decoder; past it a snapshot gets 503 GW_ERR_CAPACITY.',
            }),
            cacheMs: Type.Integer({
              minimum: 0,
              maximum: 60_000,
              default: 2_000,
              description: 'How long a decoded picture is served again for the same camera, profile and width; 0 decodes every request (concurrent ones still share one decode).',
            }),
            cacheMaxBytes: Type.Integer({ minimum: 0, default: 33_554_432, description: 'Bytes of JPEG the cache holds; the least recently used go first.' }),
            coldTimeoutMs: Type.Integer({
              minimum: 500,
              maximum: 120_000,
              default: 10_000,
              description: 'How long a snapshot of an idle camera waits for the pull it starts to bring a keyframe.',
            }),
            lingerMs: Type.Integer({
              minimum: 0,
              maximum: 3_600_000,
              default: 1_000,
              description:
                'How long a pull started for snapshots only stays up after its keyframe was taken (a pull someone watched lingers streams.closeAfterMs).',
            }),
            decodeTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 5_000, description: 'A decode that has not produced its JPEG in this long is killed.' }),
            maxWidth: Type.Integer({ minimum: 16, maximum: 7_680, default: 1_920, description: 'Largest `width` a snapshot may be asked for.' }),
            quality: Type.Integer({ minimum: 2, maximum: 31, default: 4, description: "JPEG quality as ffmpeg's -q:v (2 best, 31 worst)." }),
            spareDecoders: Type.Integer({
              minimum: 0,
              maximum: 16,
              default: 2,
              description:
                'Decoders started ahead, waiting on stdin, for the widths most recently asked: starting ffmpeg is most of a warm snapshot\'s time. 0 starts each decoder when its request comes.',
            }),
            spareIdleMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 60_000, description: 'A spare decoder nobody used for this long is stopped.' }),
          },
          'Snapshots (GET /api/streams/<camera>/snapshot.jpg): a live stream\'s latest keyframe, or a short pull of an idle camera, decoded to JPEG.',
        ),
      },
      'On-demand streaming engine.',
    ),
    control: obj(
      {
        path: Type.String({ pattern: '^/[A-Za-z0-9/_-]*$', default: '/api/control', description: 'URL path of the control-plane WebSocket.' }),
        allowedOrigins: Type.Array(Type.String({ pattern: '^https?://[^/]+$' }), {
          default: [],
          description:
            'Browser origins allowed to open the control WebSocket besides the gateway\'s own (scheme://host:port). Clients that send no Origin (scripts) are let in by their token alone.',
        }),
        maxMessageBytes: Type.Integer({
          minimum: 1_024,
          maximum: 1_048_576,
          default: 65_536,
          description: 'Largest message a client may send; a larger one is answered with an error and dropped. Four times this closes the connection (1009).',
        }),
        maxConnections: Type.Integer({ minimum: 1, default: 5_000, description: 'Concurrent control connections.' }),
        maxSubscriptions: Type.Integer({ minimum: 1, default: 64, description: 'Walls one connection may subscribe to.' }),
        heartbeatMs: Type.Integer({
          minimum: 100,
          maximum: 300_000,
          default: 15_000,
          description: 'Ping interval; a client that misses a pong is dropped at the next one, so within two intervals. Tokens are checked again at each.',
        }),
        rate: obj(
          {
            perSecond: Type.Integer({ minimum: 1, default: 200, description: 'Messages a second one connection may send, sustained.' }),
            burst: Type.Integer({ minimum: 1, default: 400, description: 'Messages a connection may send at once above the sustained rate.' }),
          },
          'Per-connection rate limit (token bucket); a message over it is answered GW_ERR_RATE_LIMITED and dropped.',
        ),
        flushIntervalMs: Type.Integer({
          minimum: 0,
          maximum: 1_000,
          default: 50,
          description: 'A wall\'s changes are sent at once when it has been quiet; under a burst they are batched into one frame at most this often.',
        }),
        slowClientBytes: Type.Integer({
          minimum: 16_384,
          default: 1_048_576,
          description: 'Bytes queued to a client past which it stops getting changes; once it drains it gets a fresh snapshot instead of the backlog.',
        }),
        slowClientTimeoutMs: Type.Integer({
          minimum: 100,
          default: 10_000,
          description: 'A client that stays past slowClientBytes this long (or queues four times that) is disconnected.',
        }),
        subStreamBelowWidth: Type.Integer({
          minimum: 0,
          default: 960,
          description: 'Tiles narrower than this many pixels on their screen play the camera\'s sub-stream (when it has one) unless the assignment names a profile.',
        }),
        tours: obj(
          {
            minDwellSec: Type.Integer({ minimum: 1, maximum: 86_400, default: 5, description: 'Shortest dwell a tour step may have.' }),
            maxDwellSec: Type.Integer({ minimum: 1, maximum: 86_400, default: 86_400, description: 'Longest dwell a tour step may have.' }),
            prewarmMs: Type.Integer({
              minimum: 0,
              default: 3_000,
              description: 'How long before a rotation the next step\'s streams are started, so they show video at once; 0 turns pre-warming off.',
            }),
            prewarmHoldMs: Type.Integer({
              minimum: 0,
              default: 10_000,
              description: 'How long after the rotation a pre-warmed stream is held, for the wall\'s players to join it.',
            }),
            maxCameras: Type.Integer({ minimum: 1, default: 1_000, description: 'Cameras a tour may rotate through (a department query is cut here).' }),
          },
          'Tours (轮巡).',
        ),
      },
      'The control plane: video walls, layouts, tiles, tours, presets and emergency plans over a WebSocket and REST.',
    ),
    vehicles: obj(
      {
        trackWindowSec: Type.Integer({ minimum: 60, maximum: 30 * 86_400, default: 86_400, description: 'How long positions are kept for tracks; older ones are pruned.' }),
        trackMaxPoints: Type.Integer({ minimum: 10, maximum: 1_000_000, default: 20_000, description: 'Most points one track request returns.' }),
        offlineAfterSec: Type.Integer({ minimum: 5, maximum: 86_400, default: 90, description: 'A vehicle not heard from for this long is offline.' }),
        movingAboveKmh: Type.Number({ minimum: 0, maximum: 50, default: 3, description: 'Speeds above this count as moving; at or below, parked.' }),
        staleAfterSec: Type.Integer({
          minimum: 1,
          maximum: 86_400,
          default: 300,
          description: 'A position older than this when it arrives (a terminal catching up after losing coverage) goes into the track but does not move the vehicle on the map.',
        }),
        maxFutureSec: Type.Integer({ minimum: 0, maximum: 3_600, default: 60, description: 'Reports timed further ahead of the gateway clock than this are refused.' }),
        lateAlarmAfterSec: Type.Integer({
          minimum: 1,
          maximum: 86_400,
          default: 300,
          description: 'An alarm reported this long after it happened is recorded but does not trigger linkage.',
        }),
        clearedCloseAfterSec: Type.Integer({
          minimum: 0,
          maximum: 86_400,
          default: 120,
          description: 'An alarm its terminal reports over closes by itself after this long without a new report; repeats before then fold into it (debounce). 0 leaves it for a person to close.',
        }),
        linkageHoldMs: Type.Integer({ minimum: 1_000, maximum: 120_000, default: 15_000, description: 'How long a linkage pre-warms a channel for the wall players to join.' }),
        pageSizeMax: Type.Integer({ minimum: 10, maximum: 10_000, default: 1_000, description: 'Largest page of vehicles or alarms.' }),
        importMaxRows: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 50_000, description: 'Most rows one vehicle import may hold.' }),
        subscriptions: obj(
          {
            minIntervalMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 1_000, description: 'Fastest position batch a subscriber may ask for; also the default.' }),
          },
          'Position and alarm subscriptions over the control WebSocket.',
        ),
        alarmSnapshots: obj(
          {
            enabled: Type.Boolean({ default: true, description: "Take a picture of the vehicle's first channel (or the camera its linkage rule puts on a wall first) when an alarm opens." }),
            width: Type.Integer({ minimum: 160, maximum: 3_840, default: 1_280, description: 'Width of the stored picture in pixels (the height keeps the aspect ratio).' }),
            maxConcurrent: Type.Integer({ minimum: 1, maximum: 64, default: 4, description: 'Pictures taken at once: an alarm storm does not start more camera pulls than this.' }),
            maxQueued: Type.Integer({
              minimum: 0,
              maximum: 10_000,
              default: 100,
              description: 'Alarms waiting for a picture beyond those being taken; past it an alarm gets none (recorded as GW_ERR_CAPACITY) rather than one taken long after it opened.',
            }),
            maxCount: Type.Integer({ minimum: 1, maximum: 10_000_000, default: 5_000, description: 'Most alarm pictures kept; the oldest are removed first.' }),
            maxBytes: Type.Integer({ minimum: 1_048_576, default: 512 * 1_048_576, description: 'Most bytes of alarm pictures kept; the oldest are removed first.' }),
          },
          'Alarm evidence: one picture per alarm, kept with it in the database.',
        ),
      },
      'Monitored vehicles: registry, positions, alarms, geofences and alarm-to-wall linkage.',
    ),
    gb28181: obj(
      {
        enabled: Type.Boolean({ default: true, description: 'Run the GB/T 28181 SIP server: platforms, NVRs and cameras register here and their channels become sources.' }),
        host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the SIP server binds (UDP and TCP).' }),
        port: port(5060, 'SIP port, UDP and TCP; 0 picks a free one (the same for both when it can).'),
        udp: Type.Boolean({ default: true, description: 'Accept SIP over UDP.' }),
        tcp: Type.Boolean({ default: true, description: 'Accept SIP over TCP (devices behind NAT should use it; GB/T 28181-2022 §9.1.1).' }),
        id: Type.String({ pattern: '^[0-9]{20}$', default: '34020000002000000001', description: "The gateway's own 20-digit SIP id (type 200, a SIP server)." }),
        domain: Type.String({ pattern: '^[0-9]{10}$', default: '3402000000', description: 'The SIP domain: the first 10 digits of the id; also the digest realm.' }),
        publicAddress: Type.String({
          default: '',
          description: 'Address devices are told to send SIP and media to (Contact, SDP c=); empty means the local address of the socket each device reached.',
        }),
        maxMessageBytes: Type.Integer({ minimum: 4_096, maximum: 1_048_576, default: 65_536, description: 'Largest SIP message accepted, headers and body; larger ones are dropped and counted.' }),
        nonceTtlMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 300_000, description: 'How long a digest nonce stays valid; an older one gets a fresh challenge with stale=true.' }),
        registerExpiresMinSec: Type.Integer({ minimum: 1, maximum: 86_400, default: 60, description: "Shortest registration accepted; a device asking for less gets 423 Interval Too Brief." }),
        registerExpiresMaxSec: Type.Integer({ minimum: 60, maximum: 604_800, default: 86_400, description: 'Longest registration granted; a longer Expires is cut to this.' }),
        keepaliveIntervalSec: Type.Integer({ minimum: 1, maximum: 3_600, default: 60, description: 'Keepalive interval expected of devices (GB/T 28181 §9.6: 60 s).' }),
        keepaliveMissed: Type.Integer({ minimum: 1, maximum: 100, default: 3, description: 'Missed keepalives after which a device and its channels are offline.' }),
        requestTimeoutMs: Type.Integer({ minimum: 500, maximum: 64_000, default: 8_000, description: 'How long a request to a device (query, INVITE, BYE, PTZ) waits for its final answer.' }),
        refusedListSize: Type.Integer({ minimum: 10, maximum: 100_000, default: 1_000, description: 'Refused registration attempts kept for the admin list (one row per device id and address).' }),
        catalog: obj(
          {
            timeoutMs: Type.Integer({ minimum: 1_000, maximum: 600_000, default: 60_000, description: 'How long a multi-message catalog answer may take to arrive whole; a partial one is applied without removing channels.' }),
            maxChannels: Type.Integer({ minimum: 1, maximum: 200_000, default: 20_000, description: "Most channels accepted from one device's catalog." }),
          },
          'Catalog queries and their import into the registry.',
        ),
        media: obj(
          {
            host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address RTP receivers bind.' }),
            portMin: port(30_000, 'First port of the RTP receive range (UDP and TCP).'),
            portMax: port(30_999, 'Last port of the RTP receive range.'),
            firstPacketTimeoutMs: Type.Integer({ minimum: 500, maximum: 60_000, default: 5_000, description: 'How long after the ACK the first RTP packet may take before the start fails with the address the device was told.' }),
            reorderWindow: Type.Integer({ minimum: 0, maximum: 1_024, default: 32, description: 'RTP packets held to put late ones back in order; a gap older than this is skipped.' }),
          },
          'Live view: RTP receivers for PS over RTP.',
        ),
        ptz: obj(
          {
            leaseMs: Type.Integer({ minimum: 1_000, maximum: 600_000, default: 30_000, description: "How long one operator keeps control of a camera's PTZ after their last command." }),
            commandsPerSec: Type.Integer({ minimum: 1, maximum: 100, default: 10, description: 'PTZ commands per user and camera per second; more are refused with GW_ERR_RATE_LIMITED.' }),
          },
          'Pan, tilt, zoom and presets of GB/T 28181 channels.',
        ),
      },
      'GB/T 28181: the SIP server departments\' platforms, NVRs and cameras register to, and live view of their channels.',
    ),
    jt808: obj(
      {
        enabled: Type.Boolean({ default: true, description: "Run the JT/T 808 server: vehicles' onboard terminals connect here with positions, alarms and commands." }),
        host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the JT/T 808 server binds (TCP).' }),
        port: port(7611, 'JT/T 808 TCP port; 0 picks a free one.'),
        authTimeoutSec: Type.Integer({ minimum: 1, maximum: 600, default: 30, description: 'A connection that has not registered or authenticated within this long is closed.' }),
        heartbeatTimeoutSec: Type.Integer({ minimum: 10, maximum: 3_600, default: 180, description: 'A terminal silent for this long (no heartbeat, position or anything) is disconnected and its vehicle offline.' }),
        commandTimeoutMs: Type.Integer({ minimum: 500, maximum: 60_000, default: 5_000, description: "How long a platform command (0x9101, 0x9102, ...) waits for the terminal's general response." }),
        maxFrameBytes: Type.Integer({ minimum: 1_100, maximum: 65_536, default: 4_096, description: 'Largest JT/T 808 frame accepted on the wire (escaped, flags included); longer ones are dropped and counted.' }),
        maxSubpackageBytes: Type.Integer({ minimum: 16_384, maximum: 16_777_216, default: 1_048_576, description: 'Most memory the unfinished subpackage series of one connection may hold, counted as their bodies plus 512 bytes a piece and a series; past it the oldest series are dropped and counted, and a series announcing more pieces than fit (total over about this / 512) is refused on its first piece.' }),
        subpackageTimeoutMs: Type.Integer({ minimum: 1_000, maximum: 600_000, default: 30_000, description: 'A subpackage series not complete within this long is dropped and counted.' }),
        positionFlushMs: Type.Integer({ minimum: 10, maximum: 5_000, default: 250, description: "Terminals' positions are written and shown in batches at this interval." }),
        refusedListSize: Type.Integer({ minimum: 10, maximum: 100_000, default: 1_000, description: 'Refused terminals kept for the admin list (one row per phone number and address).' }),
        maxConnections: Type.Integer({ minimum: 1, maximum: 1_000_000, default: 20_000, description: 'Open JT/T 808 connections at most (authenticated or not); one past it is closed at once and counted.' }),
        maxConnectionsPerIp: Type.Integer({
          minimum: 1,
          maximum: 1_000_000,
          default: 2_000,
          description: "Open JT/T 808 connections from one address at most. Terminals behind a carrier's NAT share an address: keep it above the fleet behind one.",
        }),
        autoRegister: obj(
          {
            enabled: Type.Boolean({ default: false, description: 'Register unknown terminals as new vehicles in departmentId instead of refusing them.' }),
            departmentId: Type.String({ default: '', description: 'The department auto-registered vehicles are placed in (required when enabled).' }),
            channels: Type.Integer({ minimum: 0, maximum: 16, default: 4, description: "JT/T 1078 channels (1..n) registered as cameras for an auto-registered vehicle." }),
            maxPerHour: Type.Integer({
              minimum: 1,
              maximum: 100_000,
              default: 60,
              description: 'Vehicles auto-registered per hour at most; past it unknown terminals are refused (reason unknown) until the hour has passed, so a flood of random SIMs cannot fill the department.',
            }),
          },
          'Auto-registration of unknown terminals: off by default, so a terminal becomes a vehicle only by an admin\'s decision.',
        ),
      },
      "JT/T 808: the vehicles' onboard terminals (positions, alarms, commands).",
    ),
    jt1078: obj(
      {
        enabled: Type.Boolean({ default: true, description: "Serve JT/T 1078 live video: vehicle channels (jt1078:// sources) are asked for over the terminal's JT/T 808 link." }),
        host: Type.String({ minLength: 1, default: '0.0.0.0', description: 'Address the media listeners bind (TCP and UDP).' }),
        port: port(7612, 'Media port terminals send JT/T 1078 packets to, TCP and UDP; 0 picks a free one (the same for both when it can).'),
        publicAddress: Type.String({
          default: '',
          description: "Address terminals are told to send media to (0x9101); empty means the local address of the socket each terminal's JT/T 808 link reached.",
        }),
        startTimeoutMs: Type.Integer({ minimum: 1_000, maximum: 60_000, default: 10_000, description: "How long after the terminal answers 0x9101 it may take to open its media link and send the channel's first packet; a start waits for it (and for the answer, jt808.commandTimeoutMs) even past streams.startTimeoutMs." }),
        maxPacketBytes: Type.Integer({ minimum: 1_024, maximum: 1_048_576, default: 65_536, description: 'Largest JT/T 1078 packet body accepted (devices exceed the 950 bytes of the standard).' }),
        maxFrameBytes: Type.Integer({ minimum: 65_536, maximum: 16_777_216, default: 2_097_152, description: 'Largest video frame reassembled from packets; a larger one is dropped and counted.' }),
        dailyBudgetBytes: Type.Integer({ minimum: 0, default: 0, description: "Video bytes per vehicle per day (cellular data); past it the vehicle's channels fall back to the sub-stream and close early when idle. 0: no budget." }),
        overBudgetCloseAfterMs: Type.Integer({ minimum: 0, maximum: 600_000, default: 5_000, description: "How long a channel of a vehicle past its budget lingers after its last viewer leaves." }),
      },
      'JT/T 1078: live video from the vehicles\' terminals.',
    ),
    player: obj(
      {
        enabled: Type.Boolean({ default: true, description: 'Serve the browser pages (wall screens, console, regulator and admin) from the gateway.' }),
        dir: Type.String({ default: 'dist/player', description: 'Directory of the built player (npm run build:player), relative to the working directory.' }),
        language: Type.Union([Type.Literal('zh'), Type.Literal('en')], { default: 'zh', description: "The pages' language until a user picks another." }),
        map: obj(
          {
            tileUrl: Type.String({
              default: '',
              pattern: '^(|https?://[^\\s]+|/[^\\s]*)$',
              description: "Slippy-map tile URL template ({z}/{x}/{y}) of the command centre's map server; empty draws a plain coordinate grid.",
            }),
            attribution: Type.String({ default: '', maxLength: 200, description: 'Credit shown on the map for its tiles.' }),
            maxZoom: Type.Integer({ minimum: 1, maximum: 22, default: 18, description: 'Deepest zoom the tile server has.' }),
            centre: Type.Tuple([Type.Number({ minimum: -180, maximum: 180 }), Type.Number({ minimum: -90, maximum: 90 })], {
              default: [118.78, 32.05],
              description: 'Where the map opens, [lon, lat], until the vehicles are known.',
            }),
          },
          "The regulator's map.",
        ),
      },
      'The browser pages.',
    ),
    demo: obj(
      {
        enabled: Type.Boolean({ default: false, description: 'Seed a demo city into an empty store at start.' }),
        sources: Type.Integer({ minimum: 0, maximum: 200_000, default: 2_000, description: 'Demo city size.' }),
        liveCameraBase: Type.String({
          default: '',
          description: 'RTSP address of a camera simulator (scripts/camera-sim.ts); with it, demo mode registers live cameras from it.',
        }),
        liveCameras: Type.Integer({ minimum: 0, maximum: 1_000, default: 36, description: 'Live simulated cameras registered in demo mode.' }),
        vehicles: Type.Integer({
          minimum: 0,
          maximum: 20_000,
          default: 826,
          description: 'Demo vehicles registered in demo mode, with their channels as JT/T 1078 cameras (played from their terminals: scripts/jt-sim.ts, which npm run demo starts).',
        }),
      },
      'Demo mode for a first look.',
    ),
    store: obj(
      {
        engine: Type.Union([Type.Literal('sqlite'), Type.Literal('postgres')], {
          default: 'sqlite',
          description: 'sqlite: the embedded store in <dataDir>/wallgate.db (one node). postgres: a PostgreSQL database, which cluster mode needs.',
        }),
        postgres: obj(
          {
            url: Type.String({
              default: '',
              description: 'postgres://user:password@host:5432/database. Its password is never logged; prefer WALLGATE_STORE_POSTGRES_URL or a 0600 config file.',
            }),
            poolSize: Type.Integer({ minimum: 1, maximum: 200, default: 10, description: 'Connections this node keeps to PostgreSQL.' }),
            connectTimeoutMs: Type.Integer({ minimum: 100, maximum: 60_000, default: 3_000, description: 'How long a new connection may take before a write fails as unavailable.' }),
            statementTimeoutMs: Type.Integer({ minimum: 100, maximum: 600_000, default: 10_000, description: 'Longest a statement may run (PostgreSQL statement_timeout).' }),
          },
          'PostgreSQL, when store.engine is postgres.',
        ),
      },
      'Where the registry, walls, users, vehicles and audit log are kept.',
    ),
    cluster: obj(
      {
        enabled: Type.Boolean({
          default: false,
          description: 'Run as one node of several sharing store.engine postgres and Redis: each camera is pulled by one node, walls and vehicles stay in step on every node.',
        }),
        nodeId: Type.String({
          default: '',
          pattern: '^[A-Za-z0-9._-]{0,64}$',
          description: "This node's name in the cluster, unique among the nodes; empty means <hostname>-<server.port>.",
        }),
        advertiseUrl: Type.String({
          default: '',
          pattern: '^(|https?://[^\\s/]+)$',
          description: "Where viewers and the other nodes reach this node's HTTP server (http://10.0.0.5:8080); empty means http://127.0.0.1:<server.port>.",
        }),
        redisUrl: Type.String({ default: 'redis://127.0.0.1:6379', description: 'redis://[:password@]host:port[/db] of the Redis the nodes share.' }),
        keyPrefix: Type.String({ default: 'wallgate:', pattern: '^[A-Za-z0-9:._-]{1,64}$', description: 'Prefix of every Redis key and channel, so clusters can share one Redis.' }),
        leaseMs: Type.Integer({
          minimum: 1_000,
          maximum: 60_000,
          default: 5_000,
          description: "How long a node's hold on a camera outlives its last renewal: after a node dies, its cameras move within about this long.",
        }),
        heartbeatMs: Type.Integer({ minimum: 200, maximum: 10_000, default: 1_000, description: 'How often a node renews its leases and reports its load.' }),
        viewerRouting: Type.Union([Type.Literal('redirect'), Type.Literal('relay')], {
          default: 'redirect',
          description: 'A viewer who asks a node that does not pull the camera: redirect sends HLS, HTTP-FLV and WHEP to the owner (307) and proxies WS-FLV. relay (every output served through this node from the owner) is not available yet and is refused.',
        }),
      },
      'Cluster mode (several nodes on PostgreSQL and Redis).',
    ),
  },
  'wallgate configuration',
);

export type Config = Static<typeof configSchema>;
