// Package all imports every connector type built into minsheng, so that importing it registers
// them all. It holds no code of its own.
package all

import (
	_ "github.com/minsheng-project/minsheng/connectors/api" // generic HTTP intake
)
