"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.startSyncService = startSyncService;
function startSyncService(_options) {
    throw new Error('not built yet');
}
