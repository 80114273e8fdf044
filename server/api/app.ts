// The express application: the access check before any routing, the API routers (at each path and
// under /api, as ComfyUI serves them), the editor's files, and every failure answered in
// api.md's error shape.
import fs from 'node:fs';
import path from 'node:path';
import express, { type Express, type NextFunction, type Request, type Response, type Router } from 'express';
import { errorBody, HttpError } from './errors.ts';
import { checkAccess, isPublicPath, TOKEN_COOKIE, type AccessPolicy } from './security.ts';

export interface AppParts {
  policy: AccessPolicy;
  /** Set as a cookie when the access check asks for it (a token given in the query). */
  token: string | undefined;
  /** Mounted in this order, each at its paths and under /api. */
  routers: readonly Router[];
  /** The built editor; a page saying how to build it when it has no index.html. */
  clientDir: string;
  log(message: string): void;
}

const NO_CLIENT_PAGE = `<!doctype html><html><head><meta charset="utf-8"><title>rdflow</title></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 3em auto">
<h1>rdflow server</h1><p>The API is running. The editor has not been built: run
<code>npm run build:client</code> and reload this page.</p></body></html>`;

interface BodyParserError {
  type?: string;
  status?: number;
  statusCode?: number;
  message?: string;
}

/** The token and origin check, before any routing; only the editor's page and assets are public. */
function accessGuard(policy: AccessPolicy, token: string | undefined) {
  return (req: Request, res: Response, next: NextFunction) => {
    const decision = checkAccess(policy, {
      origin: req.headers.origin,
      host: req.headers.host,
      authorization: req.headers.authorization,
      cookie: req.headers.cookie,
      url: req.originalUrl,
    });
    if (!decision.ok) {
      const open = decision.status === 401 && isPublicPath(req.method, req.path);
      if (!open) {
        res.status(decision.status).json(errorBody('forbidden', decision.message));
        return;
      }
    } else if (decision.setCookie && token) {
      res.cookie(TOKEN_COOKIE, token, { httpOnly: true, sameSite: 'strict', path: '/' });
    }
    next();
  };
}

/** Express 5 forwards rejected handlers here; body-parser's failures become 4xx, the rest a logged 500. */
function errorHandler(log: (message: string) => void) {
  return (err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    void _next;
    if (res.headersSent) {
      res.end();
      return;
    }
    if (err instanceof HttpError) {
      res.status(err.status).json(errorBody(err.type, err.message, err.details));
      return;
    }
    const e = (typeof err === 'object' && err !== null ? err : {}) as BodyParserError;
    const status = e.status ?? e.statusCode ?? 500;
    if (e.type === 'entity.too.large') {
      res.status(413).json(errorBody('request_too_large', 'The request body is too large.', e.message ?? ''));
    } else if (e.type === 'entity.parse.failed') {
      res
        .status(400)
        .json(errorBody('invalid_prompt', 'The request body is not valid JSON.', e.message ?? ''));
    } else if (status >= 400 && status < 500) {
      res.status(status).json(errorBody('invalid_request', e.message ?? 'Bad request'));
    } else {
      log(`request failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      res.status(500).json(errorBody('server_error', 'Internal server error.'));
    }
  };
}

export function createApp(parts: AppParts): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('query parser', 'simple');
  // Routing matches exactly what the access check sees: `/Queue` is not `/queue` (it was, and
  // slipped past a case-sensitive check), `/queue/` is not `/queue`.
  app.set('case sensitive routing', true);
  app.set('strict routing', true);

  app.use(accessGuard(parts.policy, parts.token));
  for (const router of parts.routers) {
    app.use('/api', router);
    app.use(router);
  }

  if (fs.existsSync(path.join(parts.clientDir, 'index.html'))) {
    app.use(express.static(parts.clientDir, { index: 'index.html' }));
  } else {
    app.get('/', (_req, res) => {
      res.type('html').send(NO_CLIENT_PAGE);
    });
  }

  app.use((req: Request, res: Response) => {
    res.status(404).json(errorBody('not_found', `No route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(parts.log));
  return app;
}
