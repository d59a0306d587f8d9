// The cluster e2e suite (cluster-suite.ts) on one Redis server.
import { clusterSuite } from './cluster-suite.js'

clusterSuite(false)
