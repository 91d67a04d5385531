// `/`: send the runner to the right step. The session lives in this browser, so the choice is here.
import { getToken, PAGES } from "./app.js";

location.replace(getToken() ? PAGES.summary : PAGES.profile);
