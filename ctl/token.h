/*
 * What tollgatectl's two minting commands (token create, token rotate) share: making a
 * new token and handing its plaintext out exactly once, on stdout.
 */
#ifndef TG_CTL_TOKEN_H
#define TG_CTL_TOKEN_H

#include "common/apitoken.h"

/** tg_apitoken_mint, or -1 after printing why. */
int tg_ctl_token_mint(tg_apitoken_new_t *token) __attribute__((warn_unused_result));

/**
 * Writes the plaintext, one line, to stdout and flushes it. A failed write is an error
 * (-1, printed, naming the id to revoke): the token would exist with nobody holding it.
 */
int tg_ctl_token_print(const tg_apitoken_new_t *token) __attribute__((warn_unused_result));

#endif
