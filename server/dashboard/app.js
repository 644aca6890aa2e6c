/*
 * tollgate token dashboard: the whole front end, no framework, no build step. It uses
 * only the JSON API of its own origin (docs/api.md). The session JWT lives in this
 * closure and nowhere else (no localStorage, no cookie): reloading signs out. Data is
 * put in the page with textContent and DOM calls only, never as HTML.
 */
(function () {
    'use strict';

    var USAGE_PAGE_SIZE = 20; /* rows per usage page: one screen */
    var MAX_TIMER_MS = 2147483647; /* setTimeout's limit (2^31 - 1 ms) */

    var state = {
        jwt: null, /* the session JWT: memory only */
        generation: 0, /* bumped at every sign-in and sign-out: late answers of an old session are dropped */
        expiryTimer: null,
        tokens: [],
        usage: null /* {token, page, totalPages} while the usage panel is open */
    };

    function $(id) {
        return document.getElementById(id);
    }

    /* el('td', {className: 'num', text: '3'}, child...): properties only, never HTML. */
    function el(tag, props) {
        var node = document.createElement(tag);
        var key;
        props = props || {};
        for (key in props) {
            if (!Object.prototype.hasOwnProperty.call(props, key)) continue;
            if (key === 'text') node.textContent = props[key];
            else if (key.indexOf('aria-') === 0 || key.indexOf('data-') === 0) node.setAttribute(key, props[key]);
            else node[key] = props[key];
        }
        for (var i = 2; i < arguments.length; ++i)
            if (arguments[i] !== null && arguments[i] !== undefined)
                node.appendChild(typeof arguments[i] === 'string' ? document.createTextNode(arguments[i]) : arguments[i]);
        return node;
    }

    /* ------------------------------------------------------------ the API */

    function ApiError(status, code, message, retryAfter) {
        this.status = status;
        this.code = code;
        this.message = message;
        this.retryAfter = retryAfter;
    }

    /* One JSON call. Resolves with the parsed body (null for 204); rejects with ApiError. */
    function api(method, path, body) {
        var headers = {Accept: 'application/json'};
        if (state.jwt !== null) headers.Authorization = 'Bearer ' + state.jwt;
        if (body !== undefined) headers['Content-Type'] = 'application/json';
        var init = {
            method: method,
            headers: headers,
            cache: 'no-store',
            credentials: 'omit',
            redirect: 'error',
            referrerPolicy: 'no-referrer'
        };
        if (body !== undefined) init.body = JSON.stringify(body);
        return fetch(path, init).then(
            function (res) {
                if (res.status === 204) return null;
                return res.text().then(function (text) {
                    var data = null;
                    try {
                        data = text ? JSON.parse(text) : null;
                    } catch (e) {
                        data = null;
                    }
                    if (res.ok) return data;
                    var err = data && data.error ? data.error : {};
                    throw new ApiError(
                        res.status,
                        typeof err.code === 'string' ? err.code : 'http_' + res.status,
                        typeof err.message === 'string' && err.message ? err.message : 'The server answered ' + res.status + '.',
                        res.headers.get('Retry-After')
                    );
                });
            },
            function () {
                throw new ApiError(0, 'network_error', 'The server cannot be reached. Check the connection and try again.', null);
            }
        );
    }

    /* A sentence for a person: what went wrong and what to do. */
    function describe(err) {
        if (!(err instanceof ApiError)) return 'Something went wrong in the page: ' + String(err);
        if (err.status === 429) {
            var wait = err.retryAfter && /^[0-9]+$/.test(err.retryAfter) ? ' Try again in ' + err.retryAfter + ' s.' : ' Try again later.';
            return 'Too many requests: ' + err.message + wait;
        }
        if (err.status === 503) return 'The service is unavailable right now: ' + err.message + ' Try again shortly.';
        if (err.status === 0) return err.message;
        return err.message + ' (' + err.code + ', HTTP ' + err.status + ')';
    }

    /* ------------------------------------------------------------ notices */

    function showNotice(text) {
        var notice = $('notice');
        notice.textContent = text;
        notice.hidden = false;
    }

    function clearNotice() {
        $('notice').hidden = true;
        $('notice').textContent = '';
    }

    /* Errors of a signed-in call: a 401 means the session is over, anything else is shown. */
    function failed(generation) {
        return function (err) {
            if (generation !== state.generation) return;
            if (err instanceof ApiError && err.status === 401) {
                endSession('Your session has ended. Sign in again.');
                return;
            }
            showNotice(describe(err));
        };
    }

    /* ------------------------------------------------------------ formatting */

    function formatTime(iso) {
        if (typeof iso !== 'string' || iso === '') return null;
        return iso.replace('T', ' ').replace(/(\.\d+)?Z$/, ' UTC');
    }

    function timeCell(iso) {
        var text = formatTime(iso);
        if (text === null) return el('td', {text: '—'});
        return el('td', {}, el('time', {dateTime: iso, text: text}));
    }

    /* active, rotated (the old token of a rotation, working until revokedAt), revoked, expired */
    function tokenStatus(token) {
        if (token.revokedAt) return Date.parse(token.revokedAt) > Date.now() ? 'rotated' : 'revoked';
        if (token.expiresAt && Date.parse(token.expiresAt) <= Date.now()) return 'expired';
        return 'active';
    }

    function formatMs(value) {
        return typeof value === 'number' ? value.toFixed(3) : '—';
    }

    /* ------------------------------------------------------------ views */

    function showView(signedIn) {
        $('signin-view').hidden = signedIn;
        $('tokens-view').hidden = !signedIn;
        $('session').hidden = !signedIn;
    }

    function clearSecret() {
        $('secret-value').value = '';
        $('secret-name').textContent = '';
        $('secret-copy-status').textContent = '';
        $('secret-panel').hidden = true;
    }

    /* Forgets everything of the session: the JWT, tokens, usage, a plaintext on screen. */
    function endSession(message) {
        state.jwt = null;
        state.generation += 1;
        state.tokens = [];
        state.usage = null;
        if (state.expiryTimer !== null) clearTimeout(state.expiryTimer);
        state.expiryTimer = null;
        clearSecret();
        $('tokens-body').replaceChildren();
        $('usage-panel').hidden = true;
        $('whoami').textContent = '';
        $('signin-password').value = '';
        var dialog = $('confirm-dialog');
        if (dialog.open) dialog.close('cancel');
        clearNotice();
        $('signin-error').textContent = message || '';
        showView(false);
        $('signin-email').focus();
    }

    /* ------------------------------------------------------------ sign in and out */

    function onSignIn(event) {
        event.preventDefault();
        var email = $('signin-email').value.trim();
        var password = $('signin-password').value;
        var errorBox = $('signin-error');
        errorBox.textContent = '';
        if (email === '' || password === '') {
            errorBox.textContent = 'Enter your email and your password.';
            return;
        }
        var button = $('signin-submit');
        button.disabled = true;
        api('POST', '/api/v1/auth/login', {email: email, password: password})
            .then(function (data) {
                if (!data || typeof data.token !== 'string') throw new ApiError(500, 'bad_answer', 'The server gave no session token.', null);
                startSession(data.token, data.expiresAt);
            })
            .catch(function (err) {
                if (err instanceof ApiError && err.status === 401) errorBox.textContent = 'Sign-in failed: the email or the password is wrong.';
                else errorBox.textContent = 'Sign-in failed. ' + describe(err);
            })
            .then(function () {
                button.disabled = false;
            });
    }

    function startSession(jwt, expiresAt) {
        state.jwt = jwt;
        state.generation += 1;
        $('signin-password').value = '';
        var left = Date.parse(expiresAt) - Date.now();
        if (left > 0) {
            state.expiryTimer = setTimeout(function () {
                endSession('Your session expired. Sign in again.');
            }, Math.min(left, MAX_TIMER_MS));
        }
        var generation = state.generation;
        api('GET', '/api/v1/me')
            .then(function (me) {
                if (generation !== state.generation) return;
                $('whoami').textContent = me && me.user ? me.user.email : '';
                showView(true);
                clearNotice();
                $('create-name').focus();
                return loadTokens();
            })
            .catch(failed(generation));
    }

    function onSignOut() {
        var jwt = state.jwt;
        var done = function () {
            endSession('You are signed out.');
        };
        if (jwt === null) return done();
        $('signout').disabled = true;
        /* The session ends on the server too; whatever it answers, this tab forgets it. */
        api('POST', '/api/v1/auth/logout')
            .then(done, function (err) {
                done();
                if (!(err instanceof ApiError && err.status === 401))
                    $('signin-error').textContent = 'Signed out here, but the server could not end the session: ' + describe(err);
            })
            .then(function () {
                $('signout').disabled = false;
            });
    }

    /* ------------------------------------------------------------ tokens */

    /* Every page of the list, following pagination.nextCursor (a bounded number of pages:
     * the server caps live tokens per user, revoked ones add up slowly). */
    var TOKEN_PAGES_MAX = 50;

    function loadTokens() {
        var generation = state.generation;
        var all = [];
        function page(cursor, n) {
            var path = '/api/v1/tokens?limit=1000' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '');
            return api('GET', path).then(function (data) {
                if (generation !== state.generation) return null;
                if (data && Array.isArray(data.tokens)) all = all.concat(data.tokens);
                var next = data && data.pagination ? data.pagination.nextCursor : null;
                if (typeof next === 'string' && next && n + 1 < TOKEN_PAGES_MAX) return page(next, n + 1);
                return all;
            });
        }
        return page(null, 0)
            .then(function (tokens) {
                if (tokens === null || generation !== state.generation) return;
                state.tokens = tokens;
                renderTokens();
            })
            .catch(failed(generation));
    }

    function actionButton(label, action, token, disabled) {
        return el('button', {
            type: 'button',
            text: label,
            disabled: !!disabled,
            'data-action': action,
            'data-token-id': token.id,
            'aria-label': label + ' token ' + token.name
        });
    }

    function tokenRow(token) {
        var status = tokenStatus(token);
        var scopes = Array.isArray(token.scopes) ? token.scopes.join(', ') : 'all of yours';
        var row = el(
            'tr',
            {className: status, 'data-token-id': token.id},
            el('td', {text: token.name}),
            el('td', {}, el('code', {text: token.prefix + '…'})),
            el('td', {}, el('span', {
                className: 'status status-' + status,
                text: status,
                title: status === 'rotated' ? 'Works until ' + formatTime(token.revokedAt) : ''
            })),
            timeCell(token.createdAt),
            token.expiresAt ? timeCell(token.expiresAt) : el('td', {text: 'never'}),
            timeCell(token.lastUsedAt),
            el('td', {className: 'num', text: String(typeof token.requestCount === 'number' ? token.requestCount : 0)}),
            el('td', {className: 'mono', text: scopes}),
            el(
                'td',
                {},
                el(
                    'div',
                    {className: 'actions'},
                    actionButton('Usage', 'usage', token, false),
                    actionButton('Rotate', 'rotate', token, status !== 'active'),
                    actionButton('Revoke', 'revoke', token, status === 'revoked')
                )
            )
        );
        if (state.usage && state.usage.token.id === token.id) row.classList.add('selected');
        return row;
    }

    function renderTokens() {
        var body = $('tokens-body');
        body.replaceChildren();
        state.tokens.forEach(function (token) {
            body.appendChild(tokenRow(token));
        });
        $('tokens-empty').hidden = state.tokens.length > 0;
        $('tokens-table').hidden = state.tokens.length === 0;
    }

    function findToken(id) {
        for (var i = 0; i < state.tokens.length; ++i)
            if (state.tokens[i].id === id) return state.tokens[i];
        return null;
    }

    function showSecret(name, plaintext) {
        $('secret-name').textContent = '“' + name + '”';
        $('secret-value').value = plaintext;
        $('secret-copy-status').textContent = '';
        $('secret-panel').hidden = false;
        $('secret-value').focus();
        $('secret-value').select();
    }

    function onCreate(event) {
        event.preventDefault();
        var name = $('create-name').value.trim();
        if (name === '') {
            showNotice('Give the token a name.');
            $('create-name').focus();
            return;
        }
        var body = {name: name};
        var expires = $('create-expires').value;
        if (expires !== '') {
            var when = new Date(expires); /* datetime-local: the browser's time zone */
            if (isNaN(when.getTime())) {
                showNotice('The expiry date is not valid.');
                return;
            }
            body.expiresAt = when.toISOString();
        }
        var generation = state.generation;
        var button = $('create-submit');
        button.disabled = true;
        api('POST', '/api/v1/tokens', body)
            .then(function (data) {
                if (generation !== state.generation) return;
                clearNotice();
                $('create-name').value = '';
                $('create-expires').value = '';
                showSecret(data.name, data.token);
                return loadTokens();
            })
            .catch(failed(generation))
            .then(function () {
                button.disabled = false;
            });
    }

    function onCopy() {
        var input = $('secret-value');
        var status = $('secret-copy-status');
        var manual = function () {
            input.focus();
            input.select();
            status.textContent = 'The browser did not allow copying: the token is selected, press Ctrl+C (⌘C on a Mac).';
        };
        if (!navigator.clipboard || typeof navigator.clipboard.writeText !== 'function') return manual();
        navigator.clipboard.writeText(input.value).then(function () {
            status.textContent = 'Copied to the clipboard.';
        }, manual);
    }

    /* The confirmation dialog; resolves with true when the user confirms. */
    function ask(title, text, confirmLabel, withOverlap) {
        var dialog = $('confirm-dialog');
        $('confirm-title').textContent = title;
        $('confirm-text').textContent = text;
        $('confirm-ok').textContent = confirmLabel;
        $('rotate-fields').hidden = !withOverlap;
        $('rotate-overlap').value = '0';
        dialog.returnValue = '';
        return new Promise(function (resolve) {
            dialog.addEventListener(
                'close',
                function () {
                    resolve(dialog.returnValue === 'confirm');
                },
                {once: true}
            );
            dialog.showModal();
            $('confirm-cancel').focus();
        });
    }

    function revoke(token) {
        var generation = state.generation;
        ask(
            'Revoke “' + token.name + '”?',
            'Every request made with ' + token.prefix + '… will be refused from now on. This cannot be undone; its usage history stays.',
            'Revoke token',
            false
        ).then(function (yes) {
            if (!yes || generation !== state.generation) return;
            api('DELETE', '/api/v1/tokens/' + encodeURIComponent(token.id))
                .then(function () {
                    clearNotice();
                    return loadTokens();
                })
                .catch(failed(generation));
        });
    }

    function rotate(token) {
        var generation = state.generation;
        ask(
            'Rotate “' + token.name + '”?',
            'A new token with the same name, scopes and limits replaces ' + token.prefix + '…. The new plaintext is shown once.',
            'Rotate token',
            true
        ).then(function (yes) {
            if (!yes || generation !== state.generation) return;
            var overlap = Number($('rotate-overlap').value);
            if (!Number.isInteger(overlap) || overlap < 0 || overlap > 604800) {
                showNotice('The overlap must be a whole number of seconds from 0 to 604800.');
                return;
            }
            api('POST', '/api/v1/tokens/' + encodeURIComponent(token.id) + '/rotate', {overlapSeconds: overlap})
                .then(function (data) {
                    if (generation !== state.generation) return;
                    clearNotice();
                    showSecret(data.name, data.token);
                    return loadTokens();
                })
                .catch(failed(generation));
        });
    }

    function onTokensClick(event) {
        var button = event.target.closest('button[data-action]');
        if (!button) return;
        var token = findToken(button.getAttribute('data-token-id'));
        if (!token) return;
        var action = button.getAttribute('data-action');
        if (action === 'usage') openUsage(token);
        else if (action === 'revoke') revoke(token);
        else if (action === 'rotate') rotate(token);
    }

    /* ------------------------------------------------------------ usage */

    function openUsage(token) {
        state.usage = {token: token, page: 1, totalPages: 0};
        $('usage-token-name').textContent = token.name;
        $('usage-panel').hidden = false;
        renderTokens();
        $('usage-title').focus();
        loadUsage();
    }

    function summaryQuery() {
        var range = $('usage-range').value;
        if (range === 'hour') return 'interval=minute&from=' + encodeURIComponent(new Date(Date.now() - 3600 * 1000).toISOString());
        if (range === 'month') return 'interval=day';
        return 'interval=hour';
    }

    function loadUsage() {
        var usage = state.usage;
        if (!usage) return;
        var generation = state.generation;
        var base = '/api/v1/tokens/' + encodeURIComponent(usage.token.id) + '/usage';
        var stale = function () {
            return generation !== state.generation || state.usage !== usage;
        };
        var page = api('GET', base + '?page=' + usage.page + '&limit=' + USAGE_PAGE_SIZE).then(function (data) {
            if (!stale()) renderUsagePage(data);
        });
        var summary = api('GET', base + '/summary?' + summaryQuery()).then(function (data) {
            if (!stale()) renderSummary(data);
        });
        return Promise.all([page, summary]).catch(failed(generation));
    }

    function renderUsagePage(data) {
        var rows = data && Array.isArray(data.usage) ? data.usage : [];
        var pagination = (data && data.pagination) || {page: 1, totalPages: 0, total: 0};
        var body = $('usage-body');
        body.replaceChildren();
        rows.forEach(function (row) {
            body.appendChild(
                el(
                    'tr',
                    {},
                    timeCell(row.timestamp),
                    el('td', {className: 'mono', text: row.method}),
                    el('td', {className: 'mono', text: row.endpoint}),
                    el('td', {className: 'num', text: String(row.responseStatus)}),
                    el('td', {className: 'mono', text: row.ipAddress === null ? '—' : row.ipAddress}),
                    el('td', {text: row.userAgent === null ? '—' : row.userAgent}),
                    el('td', {className: 'num', text: formatMs(row.processingTime)})
                )
            );
        });
        state.usage.page = pagination.page;
        state.usage.totalPages = pagination.totalPages;
        $('usage-empty').hidden = pagination.total > 0;
        $('usage-table').hidden = rows.length === 0;
        $('usage-pageinfo').textContent =
            pagination.total > 0
                ? 'Page ' + pagination.page + ' of ' + Math.max(pagination.totalPages, 1) + ' (' + pagination.total + ' requests)'
                : '';
        $('usage-prev').disabled = pagination.page <= 1;
        $('usage-next').disabled = pagination.page >= pagination.totalPages;
    }

    function renderSummary(data) {
        var totals = data.totals || {};
        var classes = totals.statusClasses || {};
        var time = totals.processingTime || {};
        var cell = function (value) {
            return el('td', {className: 'num', text: String(value === undefined || value === null ? 0 : value)});
        };
        $('summary-body').replaceChildren(
            el(
                'tr',
                {},
                cell(totals.requests),
                cell(classes['2xx']),
                cell(classes['3xx']),
                cell(classes['4xx']),
                cell(classes['5xx']),
                el('td', {className: 'num', text: formatMs(time.p50)}),
                el('td', {className: 'num', text: formatMs(time.p95)})
            )
        );
        var buckets = Array.isArray(data.buckets) ? data.buckets : [];
        var peak = 0;
        buckets.forEach(function (bucket) {
            peak = Math.max(peak, bucket.requests || 0);
        });
        var chart = $('summary-chart');
        chart.replaceChildren();
        buckets.forEach(function (bucket) {
            var count = bucket.requests || 0;
            var sc = bucket.statusClasses || {};
            var errors = (sc['4xx'] || 0) + (sc['5xx'] || 0);
            var bar = el('div', {className: errors > 0 ? 'bar has-errors' : 'bar', title: formatTime(bucket.start) + ': ' + count + ' requests'});
            bar.style.height = peak > 0 ? (count / peak) * 100 + '%' : '0';
            chart.appendChild(bar);
        });
        chart.setAttribute(
            'aria-label',
            'Requests per ' + (data.interval || 'bucket') + ': ' + (totals.requests || 0) + ' in all, at most ' + peak + ' in one ' + (data.interval || 'bucket')
        );
        $('summary-range').textContent = 'From ' + formatTime(data.from) + ' to ' + formatTime(data.to) + ', by ' + data.interval + '.';
    }

    function turnPage(delta) {
        if (!state.usage) return;
        var next = state.usage.page + delta;
        if (next < 1 || (delta > 0 && next > state.usage.totalPages)) return;
        state.usage.page = next;
        loadUsage();
    }

    function closeUsage() {
        state.usage = null;
        $('usage-panel').hidden = true;
        renderTokens();
    }

    /* ------------------------------------------------------------ start */

    function start() {
        $('signin-form').addEventListener('submit', onSignIn);
        $('signout').addEventListener('click', onSignOut);
        $('create-form').addEventListener('submit', onCreate);
        $('secret-copy').addEventListener('click', onCopy);
        $('secret-done').addEventListener('click', clearSecret);
        $('tokens-refresh').addEventListener('click', function () {
            loadTokens();
        });
        $('tokens-body').addEventListener('click', onTokensClick);
        $('usage-refresh').addEventListener('click', function () {
            loadTokens();
            loadUsage();
        });
        $('usage-range').addEventListener('change', function () {
            loadUsage();
        });
        $('usage-prev').addEventListener('click', function () {
            turnPage(-1);
        });
        $('usage-next').addEventListener('click', function () {
            turnPage(1);
        });
        $('usage-close').addEventListener('click', closeUsage);
        $('confirm-ok').addEventListener('click', function () {
            $('confirm-dialog').close('confirm');
        });
        $('confirm-cancel').addEventListener('click', function () {
            $('confirm-dialog').close('cancel');
        });
        showView(false);
        $('signin-email').focus();
    }

    if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
    else start();
})();
