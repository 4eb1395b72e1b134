/* The re-injection front end of mailbeacon-rewrite (content filters). */
#ifndef MAILBEACON_REINJECT_H
#define MAILBEACON_REINJECT_H

#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"

#include <stddef.h>

/* Reads the message from in_fd, rewrites it (ring NULL: passes it on
 * unchanged) for rep (the sent record's rep: mb_config_rep) and hands it
 * on for sender (the envelope sender) and rcpts via cfg->reinject_via.
 * Returns 0 or EX_TEMPFAIL (the MTA keeps the message and tries again). */
int mb_reinject_run(const mb_config *cfg, const mb_keyring *ring, const char *sender, const char *rep,
                    const char *client_ip, char **rcpts, size_t n, int in_fd);

#endif
