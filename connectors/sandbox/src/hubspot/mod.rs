//! HubSpot CRM v3 API emulator.
