/** What Eddy prepends to the script: `window.__eddyConfig = {...};`. */
export interface EddyConfig {
  /** null when the key in the script URL is unknown or revoked. */
  writeKey: string | null;
  consent: ConsentConfig | null;
}

export interface ConsentConfig {
  /** Purposes the visitor must grant before anything is sent or stored. */
  required: string[];
  /** Every purpose the site asks consent for. */
  purposes: string[];
  /** Send (with the consent as it is) even while a required purpose is not granted. */
  allowNecessaryOnly: boolean;
}

/** A visitor's consent, purpose by purpose. */
export type Preferences = Record<string, boolean>;

export type Properties = Record<string, unknown>;

export interface PageInfo {
  path: string;
  referrer: string;
  search: string;
  title: string;
  url: string;
}

/** A Segment spec message (track, page or identify). */
export interface Message {
  type: 'track' | 'page' | 'identify';
  messageId: string;
  timestamp: string;
  anonymousId: string;
  userId?: string;
  event?: string;
  name?: string;
  properties?: Properties;
  traits?: Properties;
  context: {
    library: { name: string; version: string };
    page: PageInfo;
    userAgent: string;
    locale: string;
    timezone?: string;
    screen: { width: number; height: number; density: number };
    consent: { categoryPreferences: Preferences };
  };
}

/** What Eddy pushes to the page over /v1/actions. */
export interface Action {
  id: string;
  type: string;
  data: Record<string, unknown>;
  at: string;
}

export type ActionListener = (action: Action) => void;
