"use strict";
Object.defineProperty(exports, "__esModule", { value: true });
exports.createPullThroughRegistry = createPullThroughRegistry;
function createPullThroughRegistry(_options) {
    throw new Error('not built yet');
}
