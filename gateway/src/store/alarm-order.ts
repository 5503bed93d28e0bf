/**
 * The condition of both engines' alarm upsert (ON CONFLICT ... DO UPDATE ... WHERE): nodes write one
 * alarm at once (a repeat on the node that raised it, an acknowledgement or a close on another), and a
 * write that would take the stored alarm back (raised < acknowledged < closed) is refused, so a handled
 * alarm never comes back open.
 */
const rank = (state: string) => `CASE ${state} WHEN 'raised' THEN 0 WHEN 'acknowledged' THEN 1 ELSE 2 END`;
export const ALARM_NOT_BEHIND = `${rank('alarms.state')} <= ${rank('excluded.state')}`;
