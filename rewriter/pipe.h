/* Pipe mode of mailbeacon-rewrite: the message on standard input, the
 * message to send on standard output (an MTA's pipe or content filter). */
#ifndef MAILBEACON_PIPE_H
#define MAILBEACON_PIPE_H

#include "mailbeacon/config.h"
#include "mailbeacon/keys.h"

#include <stddef.h>

/* Reads the message from in_fd and writes it to out_fd: rewritten, or
 * unchanged when ring is NULL (the setup failed: the caller logged why),
 * when it is over max_message_size, or whenever anything goes wrong. sender
 * and rcpts (may be NULL/0) name the envelope. Returns 0, or EX_IOERR when
 * the input cannot be read or the output cannot be written (the MTA then
 * keeps the message and tries again). */
int mb_pipe_run(const mb_config *cfg, const mb_keyring *ring, const char *sender, const char *client_ip,
                const char *const *rcpts, size_t n, int in_fd, int out_fd);

#endif
